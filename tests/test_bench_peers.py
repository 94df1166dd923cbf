"""The Python parts of the peer benchmark (scripts/bench_peers.py, scripts/peers/) and of
scripts/gpu_check.sh: measuring a side, settling rounds into a ratio, the commands each side runs,
and the GPU check's CPU plumbing mode. No peer is installed or timed here."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "peers"))
sys.path.insert(0, str(ROOT / "scripts"))
import bench_peers  # noqa: E402
import harness  # noqa: E402
from perf_utils import conv_ceiling  # noqa: E402

STAT = "cpu  100 5 30 900 7 2 3 11 0 0\ncpu0 50 2 15 450 3 1 1 5 0 0\n"


def side(seconds: float, ceiling: float, cpu: float = 1.0) -> harness.SideRun:
    return harness.SideRun(wall=seconds + 1, cpu=cpu, others_cores=0.5, load_average=1.0, ceiling_gflops=ceiling,
                           result={"seconds": seconds, "cpu_seconds": cpu})


def test_busy_jiffies_counts_work_and_steal_not_idle():
    assert harness.busy_jiffies(STAT) == 100 + 5 + 30 + 2 + 3 + 11


def test_rounds_that_agree_give_the_median_ratio_and_the_target_verdict():
    i2i = [side(1.0, 100), side(1.1, 100), side(0.9, 100)]
    peer = [side(2.0, 100), side(2.42, 100), side(1.62, 100)]
    summary = harness.summarise(i2i, peer, "seconds", "cpu_seconds")
    assert summary.ratios == pytest.approx([2.0, 2.2, 1.8])
    assert summary.settled
    assert summary.verdict() == "**2.00x** (1.80-2.20)"
    assert summary.target_met(1.5) == "met" and summary.target_met(3.0) == "not met"


def test_rounds_that_disagree_by_more_than_the_spread_are_unsettled():
    summary = harness.summarise([side(1.0, 100), side(1.0, 50)], [side(0.5, 100), side(2.0, 200)], "seconds", None)
    assert not summary.settled
    assert summary.verdict().startswith("unsettled (0.50-2.00)")
    assert summary.target_met(1.5) == "unknown (unsettled)"
    # each side's time scaled by the ceiling measured beside it: round 2 ran the peer on a 4x faster machine
    assert summary.adjusted_ratios == pytest.approx([0.5, 8.0])
    assert summary.cpu_ratios == pytest.approx([1.0, 1.0])  # whole-process CPU when no CPU key is given
    row = harness.table_row("x", "step", summary, [side(1, 100)], 1.5)
    assert "unsettled" in row and row.count("|") == harness.TABLE_HEADER.splitlines()[0].count("|")


def test_one_round_is_never_called_settled():
    summary = harness.summarise([side(1.0, 100)], [side(3.0, 100)], "seconds", None)
    assert not summary.settled and summary.verdict().startswith("one round only")


def test_run_side_measures_a_child_and_reads_its_json_line():
    burn = ("import json, time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass\n"
            "print('noise')\nprint(json.dumps({'seconds': 0.2}))")
    run = harness.run_side([sys.executable, "-c", burn], env=None, ceiling_gflops=123.0)
    assert run.result == {"seconds": 0.2}
    assert run.cpu >= 0.15 and run.wall >= run.cpu / 2  # the child's CPU, not ours
    assert run.seconds("wall") == run.wall and run.ceiling_gflops == 123.0
    if sys.platform.startswith("linux"):
        assert run.others_cores >= 0 and not math.isnan(run.load_average)


def test_run_side_reports_a_failing_child_with_its_error():
    with pytest.raises(RuntimeError, match="boom"):
        harness.run_side([sys.executable, "-c", "import sys; sys.exit('boom')"], env=None, ceiling_gflops=1.0)


def test_conv_ceiling_is_a_positive_rate():
    rate = conv_ceiling(torch.device("cpu"), channels=8, size=16, repeats=1)
    assert math.isfinite(rate) and rate > 1e6


def test_each_side_runs_the_same_network_on_the_same_inputs(tmp_path):
    files = {"msrresnet": tmp_path / "m.pth", "compact": tmp_path / "c.pth", "rrdbnet": tmp_path / "r.pth",
             "photos-upscale-compact": tmp_path / "photos", "clip": tmp_path / "clip.mp4", "ffmpeg": "ffmpeg"}
    peer_python = tmp_path / "venv" / "bin" / "python"
    by_name = {c.name: c for c in bench_peers.COMPARISONS}
    for name in ("srresnet", "upscale-compact", "video"):
        c = by_name[name]
        commands = bench_peers.side_commands(c, c.sizes, files, tmp_path, 0, peer_python)
        assert commands["peer"][0] == str(peer_python)  # the peers run in their own environment
        assert commands["i2i"][0] == sys.executable
        weights = f"={files[c.network]}" if name != "video" else str(files[c.network])
        assert any(arg.endswith(weights) for arg in commands["i2i"])
        assert any(arg.endswith(str(files[c.network])) for arg in commands["peer"])
    pix2pix = bench_peers.side_commands(by_name["pix2pix"], by_name["pix2pix"].sizes, files, tmp_path, 0, peer_python)
    assert pix2pix["peer"][0] == sys.executable  # the reference step needs only torch
    assert pix2pix["i2i"][3:] == pix2pix["peer"][3:] == ["--size=256", "--batch=1", "--steps=3", "--warmup=1"]
    srresnet = bench_peers.side_commands(by_name["srresnet"], by_name["srresnet"].sizes, files, tmp_path, 0, peer_python)
    assert "--size=96" in srresnet["peer"] and "--batch=16" in srresnet["peer"]


def test_gpu_check_cpu_smoke_writes_one_table(tmp_path):
    out = tmp_path / "check.md"
    result = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--cpu-smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = out.read_text()
    assert table in result.stdout + "\n"
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    checks = [row.split(" | ")[0][2:] for row in rows]
    for task in ("pix2pix", "cyclegan", "srgan", "realesrgan"):
        assert f"AMP step: {task}" in checks
    assert sum(check.startswith("SR inference") for check in checks) == 3
    assert any(check.startswith("DDP") for check in checks) and any(check.startswith("video end-to-end") for check in checks)
    failed = [row for row in rows if row.rstrip(" |").endswith("NO")]
    assert not failed, failed


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="CPU pinning is Linux-only")
def test_run_side_pins_the_child_to_the_cores_asked_for():
    child = "import json, os; print(json.dumps({'cores': sorted(os.sched_getaffinity(0))}))"
    run = harness.run_side([sys.executable, "-c", child], env=None, ceiling_gflops=1.0, cores={0})
    assert run.result == {"cores": [0]}


def test_inference_variants_run_the_same_inputs_with_their_own_flags_and_an_fp32_headline(tmp_path):
    files = {"compact": tmp_path / "c.pth", "photos-upscale-compact": tmp_path / "photos", "clip": tmp_path / "clip.mp4",
             "ffmpeg": "ffmpeg"}
    by_name = {c.name: c for c in bench_peers.COMPARISONS}
    for name in ("upscale-compact", "video"):
        c = by_name[name]
        commands = bench_peers.side_commands(c, c.sizes, files, tmp_path, 2, tmp_path / "python")
        assert set(commands) == {"peer", *c.variants} and c.variants[0] == "i2i"
        # the headline is fp32 whatever `--precision auto` picks on this CPU
        assert commands["i2i"][-2:] == ["--precision", "fp32"]
        assert commands["onnx"][-4:] == ["--backend", "onnxruntime", "--precision", "fp32"]
        assert commands["bf16"][-2:] == ["--precision", "bf16"]
        assert "--no-channels-last" in commands["nchw"] and "--no-channels-last" not in commands["i2i"]
        outputs = [next(arg for arg in command if Path(arg.split("=")[-1]).name.startswith(f"{name}_"))
                   for command in commands.values()]
        assert len(set(outputs)) == len(outputs)  # each side writes its own output ...

        def without_flags_and_output(variant: str) -> list[str]:
            command = commands[variant][:len(commands[variant]) - len(bench_peers.VARIANTS[variant].flags)]
            return [arg.replace(f"{name}_{variant}_2", "OUT") for arg in command]

        for variant in c.variants:  # ... from the same inputs and weights, with the same options otherwise
            assert without_flags_and_output(variant) == without_flags_and_output("i2i")


def test_only_the_onnx_whole_process_row_says_whether_it_timed_the_export():
    onnx, plain = bench_peers.VARIANTS["onnx"], bench_peers.VARIANTS["i2i"]
    assert bench_peers.timed_label("whole process", "wall", onnx, False) == "whole process, ONNX export cached beforehand (not timed)"
    assert bench_peers.timed_label("whole process", "wall", onnx, True) == "whole process, includes the ONNX export"
    assert bench_peers.timed_label("steady state (after load)", "seconds", onnx, True) == "steady state (after load)"
    assert bench_peers.timed_label("whole process", "wall", plain, True) == "whole process"


def test_i2i_side_upscales_from_the_cached_onnx_export_like_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import argparse

    import i2i_side
    import numpy as np

    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.data.io import read_image, write_image
    from i2i.models import create_model

    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    kwargs = dict(num_feat=4, num_conv=1, scale=2)
    torch.manual_seed(0)
    weights = tmp_path / "sr.safetensors"
    save_generator(weights, create_model("srvgg_compact", **kwargs),
                   GeneratorInfo(model="srvgg_compact", kwargs=kwargs, value_range=(0.0, 1.0), scale=2, task="srgan"))
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8))

    def side(command: str, out: str, **flags):
        args = {"weights": str(weights), "inputs": str(tmp_path / "in"), "out": str(tmp_path / out), "precision": "fp32",
                "backend": "torch", "no_channels_last": False, **flags}
        return getattr(i2i_side, command)(argparse.Namespace(**args))

    exported = side("export", "")
    assert Path(exported["path"]).is_file() and Path(exported["path"]).parent == tmp_path / "home" / "onnx"
    onnx = side("upscale", "onnx", backend="onnxruntime")
    assert onnx["images"] == 1 and onnx["exported"] is False  # the cached export, not a new one
    torch_side = side("upscale", "torch", no_channels_last=True)
    a, b = read_image(tmp_path / "onnx" / "a.png"), read_image(tmp_path / "torch" / "a.png")
    assert a.shape == b.shape == (24, 20, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1 and torch_side["exported"] is False
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "empty-home"))  # no cached export: the run makes one, and says so
    assert side("upscale", "onnx-first", backend="onnxruntime")["exported"] is True
