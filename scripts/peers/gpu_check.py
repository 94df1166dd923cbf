"""The checks of scripts/gpu_check.sh, each a section that yields table rows.

On a GPU (one H100/H200, within 8 minutes): the CUDA-marked tests; one AMP training step per task
(pix2pix, cyclegan, srgan, realesrgan) with a NaN check; 2-process DDP for a few steps (torchrun,
NCCL); the inference FLOP fraction of SRResNet, RRDBNet x4plus and the compact model at 270p ->
1080p in fp16 and bf16 with channels_last (and torch.compile, kept where it pays) against the GPU's
dense fp16 tensor-core peak; ``scripts/bench_video.py`` end-to-end vs model-only vs encoder-only
on a real clip. ``--cpu-smoke`` runs the same code on the CPU with tiny sizes (fp32, gloo, the
measured conv ceiling as the peak) so its plumbing is tested where there is no GPU.
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1]
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
from perf_utils import conv_ceiling, count_flops  # noqa: E402

#: Dense fp16 tensor-core peaks (TFLOP/s, fp32 accumulate, no sparsity), by device name.
FP16_PEAK_TFLOPS = (("H200", 989.0), ("H100 SXM", 989.0), ("H100 80GB HBM3", 989.0), ("H100 NVL", 835.0),
                    ("H100 PCIe", 756.0), ("H100", 756.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0))
TASK_RECIPES = {"pix2pix": "pix2pix_demo", "cyclegan": "cyclegan_demo", "srgan": "srgan_x4", "realesrgan": "realesrgan_demo"}


def row(check: str, result: str, target: str = "", met: str = "") -> str:
    return f"| {check} | {result} | {target} | {met} |"


def verdict(met: bool, smoke: bool) -> str:
    """Targets are GPU targets: tiny CPU sizes say nothing about them."""
    return "n/a (CPU smoke)" if smoke else ("yes" if met else "no")


def fp16_peak(device: torch.device) -> tuple[float, str]:
    """(FLOP/s, where the figure comes from): the GPU's datasheet peak, or on the CPU the measured conv ceiling."""
    if device.type != "cuda":
        return conv_ceiling(device), "measured fp32 3x3-conv ceiling (CPU smoke)"
    name = torch.cuda.get_device_name(device)
    for key, tflops in FP16_PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12, f"{name}: {tflops:g} TFLOP/s dense fp16"
    return float("nan"), f"{name}: fp16 peak unknown"


def run(command: list[str], timeout: float) -> tuple[int, str]:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    return out.returncode, out.stdout + out.stderr


def cuda_tests(smoke: bool) -> list[str]:
    if smoke:
        return [row("pytest -m cuda", "skipped (CPU smoke)")]
    code, text = run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], timeout=240)
    summary = (text.strip().splitlines() or ["no output"])[-1]
    return [row("pytest -m cuda", summary, "all pass", "yes" if code == 0 else "NO")]


def demo_data(folder: Path, size: int) -> Path:
    from i2i.data.demo import make_paired_demo, make_unpaired_demo

    make_paired_demo(folder, size=size, crops_per_photo=1, seed=0)
    make_unpaired_demo(folder, size=size, crops_per_photo=2, seed=0)  # CycleGAN needs 2 per domain
    return folder


def task_config(task: str, data: Path, out: Path, smoke: bool, device: str) -> dict:
    """The task's recipe for one training step on the demo photos (tiny networks in smoke mode)."""
    import yaml

    from i2i.recipes import resolve_config_path

    raw = yaml.safe_load(resolve_config_path(TASK_RECIPES[task]).read_text())
    roots = {"pix2pix": data / "edges2photo", "cyclegan": data / "photo2warm", "srgan": data / "photo2warm",
             "realesrgan": data / "photo2warm"}
    raw.setdefault("data", {}).update({"root": str(roots[task]), "num_workers": 0, "batch_size": 2, "val_items": 1})
    if task in ("srgan", "realesrgan"):
        raw["data"].update({"train_split": "trainA", "val_split": "testA"})
        if smoke or task == "srgan":  # srgan_x4's recipe reads 96 px crops; realesrgan_demo keeps its own
            raw["data"].update({"load_size": 64 if smoke else 128, "crop_size": 32 if smoke else 96})
    else:
        raw["data"].update({"load_size": 64 if smoke else 286, "crop_size": 64 if smoke else 256})
    raw["train"] = {**raw.get("train", {}), "device": device, "precision": "auto", "max_steps": 1, "output_dir": str(out),
                    "name": task, "log_every": 1, "sample_every": 1000, "val_every": 1000, "checkpoint_every": 1000}
    if smoke:
        raw["task"]["generator"] = {"name": "unet", "num_downs": 6, "base_channels": 4} if task == "pix2pix" else (
            {"name": "resnet", "base_channels": 4, "num_blocks": 1} if task == "cyclegan" else
            {"name": "rrdbnet", "num_feat": 4, "num_block": 1, "num_grow_ch": 4} if task == "realesrgan" else
            {"base_channels": 4, "num_blocks": 1})
        if task == "srgan":  # the recipe's VGG discriminator needs 96 px crops
            raw["task"]["discriminator"] = {"name": "patchgan", "base_channels": 4, "n_layers": 1}
    return raw


def amp_steps(smoke: bool, device: str) -> list[str]:
    import json

    import i2i.tasks  # noqa: F401  (the tasks register their config sections)
    from i2i.config import parse_config
    from i2i.trainer import Trainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_data(Path(tmp) / "data", 64 if smoke else 256)
        vgg = _random_vgg19(Path(tmp))
        for task in TASK_RECIPES:
            raw = task_config(task, data, Path(tmp) / "runs", smoke, device)
            if task == "srgan":
                raw["task"]["vgg_weights"] = str(vgg)
            if task == "realesrgan":
                raw["task"]["lambda_perceptual"] = 0.0
            start = time.perf_counter()
            try:
                trainer = Trainer(parse_config(raw))
                trainer.fit()
            except Exception as exc:  # a failed step is a row of the table, not the end of the check
                rows.append(row(f"AMP step: {task}", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}",
                                "finite losses and weights", "NO"))
                continue
            events = [json.loads(line) for line in (Path(tmp) / "runs" / task / "metrics.jsonl").read_text().splitlines()]
            values = [v for e in events for k, v in e.items() if isinstance(v, float) and k not in ("lr", "time")]
            weights_ok = all(bool(torch.isfinite(p).all()) for net in trainer.task.networks.values() for p in net.parameters())
            ok = bool(values) and all(math.isfinite(v) for v in values) and weights_ok
            precision = str(trainer.autocast_dtype or torch.float32).replace("torch.", "")
            rows.append(row(f"AMP step: {task}", f"{precision}, {len(values)} logged values finite: {ok}, "
                            f"{time.perf_counter() - start:.1f} s", "finite losses and weights", "yes" if ok else "NO"))
    return rows


def _random_vgg19(folder: Path) -> Path:
    from bench_train import random_vgg19_weights

    return random_vgg19_weights(folder)


def ddp(smoke: bool) -> list[str]:
    """2 processes through torchrun (NCCL on GPUs, gloo on the CPU), a few optimized steps."""
    if not smoke and torch.cuda.device_count() < 2:
        return [row("DDP, 2 processes (torchrun, NCCL)", "not run: one GPU here, and NCCL does not put two ranks on "
                    "one device; run on a machine with 2 GPUs", "runs", "n/a")]
    task = ["--task", "srgan", "--stage", "psnr", "--size", "32", "--batch", "2"] if smoke else ["--task", "pix2pix", "--batch", "4"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(SCRIPTS / "bench_train.py"), *task, "--steps", "2" if smoke else "5", "--warmup", "1",
               "--modes", "optimized", *(["--device", "cpu"] if smoke else [])]
    code, text = run(command, timeout=150)
    found = re.search(r"2 processes x batch (\d+): ([\d.]+) images/s in all", text)
    if code != 0 or not found:
        return [row("DDP, 2 processes (torchrun)", f"failed (exit {code}): {text.strip().splitlines()[-1:]}", "runs", "NO")]
    return [row("DDP, 2 processes (torchrun)", f"{' '.join(task[:2])} batch {found.group(1)} per process: "
                f"{float(found.group(2)):.3g} images/s in all", "runs", "yes")]


def sr_networks(smoke: bool) -> dict:
    """SRResNet (paper size), RRDBNet x4plus and the compact network (realesr-general-x4v3's 32
    convolutions); tiny versions in smoke mode."""
    from i2i.models import create_model

    if smoke:
        return {"srresnet": create_model("srresnet", base_channels=8, num_blocks=1),
                "rrdbnet_x4plus": create_model("rrdbnet", scale=4, num_feat=8, num_block=1, num_grow_ch=4),
                "compact": create_model("srvgg_compact", scale=4, num_feat=8, num_conv=2)}
    return {"srresnet": create_model("srresnet"), "rrdbnet_x4plus": create_model("rrdbnet_x4plus", scale=4),
            "compact": create_model("srvgg_compact", scale=4, num_feat=64, num_conv=32)}


def frames_per_second(model, x: torch.Tensor, device: torch.device, dtype: torch.dtype | None, repeats: int) -> float:
    from perf_utils import best_time

    def forward() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            model(x)

    return x.shape[0] / best_time(forward, device, repeats=repeats, warmup=2)


def flop_fractions(smoke: bool, device: torch.device) -> list[str]:
    """Model-only x4 inference, 270p -> 1080p (CPU smoke: 32x18), channels_last."""
    width, height, batch = (32, 18, 1) if smoke else (480, 270, 4)
    peak, peak_source = fp16_peak(device)
    dtypes = {"fp32": None} if smoke else {"fp16": torch.float16, "bf16": torch.bfloat16}
    rows = []
    for name, network in sr_networks(smoke).items():
        model = network.eval().to(device).to(memory_format=torch.channels_last)
        x = torch.rand(batch, 3, height, width, device=device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            flops = count_flops(lambda: model(x)) / batch
        for label, dtype in dtypes.items():
            variants = {"eager": model}
            if not smoke and label == "fp16":
                variants["compiled"] = torch.compile(model)  # default mode: compiles in seconds, not minutes
            best = {}
            for variant, runner in variants.items():
                try:
                    best[variant] = frames_per_second(runner, x, device, dtype, repeats=3 if smoke else 10)
                except Exception as exc:  # compile may fail on a machine: the eager figure still stands
                    print(f"# {name} {label} {variant}: {type(exc).__name__}: {exc}", file=sys.stderr)
            kept = max(best, key=best.get)
            fraction = best[kept] * flops / peak
            rows.append(row(f"SR inference {name}, {width}x{height} -> x4, {label}, channels_last",
                            f"{kept} ({', '.join(f'{k} {v:.3g}' for k, v in best.items())} fps), {flops / 1e9:.3g} GFLOP/frame, "
                            f"{fraction:.0%} of {peak_source}", ">= 35%", verdict(fraction >= 0.35, smoke)))
    return rows


def video_smoke_output() -> str:
    """bench_video.py's measurement in this process, 4 frames, ESPCN: its full run would add a
    matmul ceiling and a memory probe that tiny sizes do not need."""
    import contextlib
    import io

    import bench_video
    from i2i.inference.ffmpeg import find_ffmpeg

    args = argparse.Namespace(clip=None, model="espcn", device="cpu", batch_size=None, precision="auto", tile=None, repeat=1,
                              preset="ultrafast", crf=23)
    translator, _ = bench_video.build_translator(args)
    clip = bench_video.default_clip()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        bench_video.measure_video(translator, clip, bench_video.read_frames(clip, 4), args, find_ffmpeg())
    return printed.getvalue()


def video(smoke: bool) -> list[str]:
    """scripts/bench_video.py on a real clip: end-to-end vs model-only vs encoder-only vs naive."""
    if smoke:
        code, text = 0, video_smoke_output()
    else:
        options = ["--device", "cuda", "--precision", "fp16", "--batch-size", "8", "--model", "x4", "--frames", "96", "--repeat", "2"]
        code, text = run([sys.executable, str(SCRIPTS / "bench_video.py"), *options, "--skip-memory"], timeout=240)
    limit = re.search(r"vs the limit:\s+([\d.]+)", text)
    naive = re.search(r"end-to-end is ([\d.]+)x", text)
    e2e = re.search(r"end-to-end fps:\s+([\d.e+-]+)", text)
    if code != 0 or not (limit and naive and e2e):
        return [row("video end-to-end (bench_video.py)", f"failed (exit {code}): {text.strip().splitlines()[-1:]}", "", "NO")]
    ratio, speedup = float(limit.group(1)), float(naive.group(1))
    return [row("video end-to-end vs the lower of model-only and encoder-only", f"{ratio:.2f} ({e2e.group(1)} fps end-to-end)",
                ">= 0.9", verdict(ratio >= 0.9, smoke)),
            row("video end-to-end vs the naive loop", f"{speedup:.2f}x", ">= 3x", verdict(speedup >= 3, smoke))]


SECTIONS = ("cuda-tests", "amp", "ddp", "flops", "video")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: tests the plumbing")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"), help="where the Markdown table goes")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or give --cpu-smoke to test the plumbing")
    device = torch.device("cpu" if smoke else "cuda")
    where = "CPU smoke (tiny sizes)" if smoke else torch.cuda.get_device_name(device)
    lines = [f"# gpu_check: {where}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| check | result | target | met |", "|---|---|---|---|"]
    chosen = args.sections.split(",")
    steps = {"cuda-tests": lambda: cuda_tests(smoke), "amp": lambda: amp_steps(smoke, device.type),
             "ddp": lambda: ddp(smoke), "flops": lambda: flop_fractions(smoke, device), "video": lambda: video(smoke)}
    for section in SECTIONS:
        if section in chosen:
            start = time.perf_counter()
            lines += steps[section]()
            print(f"# {section}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            args.out.write_text("\n".join(lines) + "\n")  # after every section: a time limit keeps what is done
    print("\n".join(lines))


if __name__ == "__main__":
    main()
