"""Training under hostile conditions: bad config values, signals, alias bombs, torn logs, stale
temporaries, damaged checkpoints and full disks."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_pix2pix
from i2i.checkpoint import load_training_state
from i2i.cli import main
from i2i.config import ConfigError, parse_config
from i2i.errors import TrainingError
from i2i.trainer import Trainer
from i2i.training.preflight import check_run

ROOT = Path(__file__).resolve().parents[1]


def _fit(raw: dict) -> Trainer:
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    return trainer


# --- 1. ranges of every field ---------------------------------------------------------------------
BAD_VALUES = [
    ("train", "val_every", 0), ("train", "checkpoint_every", 0), ("train", "log_every", 0),
    ("train", "sample_every", 0), ("schedule", "step_size", 0), ("data", "batch_size", -1),
    ("data", "load_size", -2), ("data", "crop_size", -3), ("data", "num_workers", -1),
    ("train", "keep_last", -1), ("train", "max_steps", -5), ("train", "epochs", -1),
    ("train", "device", "tpu"),
]


@pytest.mark.parametrize("section, key, value", BAD_VALUES)
def test_out_of_range_values_are_refused_at_parse_time(demo_data, tmp_path, section, key, value):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4)
    raw.setdefault(section, {})[key] = value
    if key == "step_size":
        raw["schedule"]["policy"] = "step"
    with pytest.raises(ConfigError, match=rf"{section}\.{key}.*{value}"):
        parse_config(raw)


def test_negative_model_sizes_are_refused(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4)
    raw["task"]["generator"]["base_channels"] = -8
    with pytest.raises(ConfigError, match=r"task\.generator\.base_channels.*-8"):
        parse_config(raw)


def test_dry_run_reports_a_zero_interval_in_one_line(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["train", str(tmp_path / "c.yaml"), "--dry-run", "--set", "train.val_every=0"])
    assert result.exit_code == 2, result.output
    assert "train.val_every" in result.output and "Traceback" not in result.output


def test_missing_weights_files_are_named_before_the_first_step(demo_data, tmp_path):
    raw = {"task": {"name": "cyclegan", "fid_weights": str(tmp_path / "nope.pth")}, "data": {"root": str(demo_data)}}
    with pytest.raises(ConfigError, match=r"task\.fid_weights.*nope\.pth"):
        check_run(parse_config(raw))
    raw["task"]["fid_weights"] = str(tmp_path)  # a folder, not a file
    with pytest.raises(ConfigError, match=r"task\.fid_weights"):
        check_run(parse_config(raw))


# --- 2. exit status of a stopped run ----------------------------------------------------------------
def test_sigterm_exits_143_after_saving(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=100000, checkpoint_every=1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "i2i", "train", str(tmp_path / "c.yaml")], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    first = tmp_path / "run" / "checkpoints" / "step_0000001.pt"
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.exists(), "no checkpoint appeared"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 143, output[-2000:]
    assert "--resume" in output
    step = load_training_state(tmp_path / "run" / "checkpoints" / "latest.pt")["step"]
    assert step >= 1


# --- 3. YAML alias bombs -----------------------------------------------------------------------------
BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    + ["task: pix2pix"]
)

BOMB_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from i2i.config import load_config
from i2i.errors import ConfigError
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    print("REFUSED", exc)
"""


def test_yaml_alias_bomb_is_refused_naming_the_file(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, str(tmp_path / "bomb.yaml")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert "REFUSED" in result.stdout and "bomb.yaml" in result.stdout, result.stdout + result.stderr[-2000:]


def test_small_aliases_still_load(tmp_path):
    import i2i.tasks  # noqa: F401
    from i2i.config import load_config

    (tmp_path / "ok.yaml").write_text("task: pix2pix\ndata: {train_split: &s train, val_split: *s}\n")
    assert load_config(tmp_path / "ok.yaml").data.val_split == "train"


# --- 4. torn and duplicated log lines ---------------------------------------------------------------
def test_torn_and_orphan_log_lines_do_not_block_resume(demo_data, tmp_path, capsys):
    run = tmp_path / "run"
    _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4))
    metrics = run / "metrics.jsonl"
    with open(metrics, "a") as f:  # logged after the checkpoint, then SIGKILL; then a full disk
        f.write(json.dumps({"step": 6, "epoch": 0, "lr": 0.001, "loss/D": 1.0}) + "\n")
        f.write('{"step": 7, "loss/')
    resumed = Trainer(resume=run, overrides=("train.max_steps=8",))
    resumed.fit()
    assert "metrics.jsonl" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if "loss/D" in line]
    assert steps == [2, 4, 6, 8]


# --- 5. stale temporaries ----------------------------------------------------------------------------
def test_stale_temporaries_are_removed_on_resume(demo_data, tmp_path):
    run = tmp_path / "run"
    _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=2))
    stale = [run / "checkpoints" / ".latest.pt.abc123xy.tmp", run / ".generator.safetensors.k2j3h4g5.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 100)
    keep = run / "checkpoints" / "notes.tmp"
    keep.write_text("mine")
    Trainer(resume=run, overrides=("train.max_steps=3",)).fit()
    assert not any(p.exists() for p in stale)
    assert keep.exists()


# --- 6. damaged checkpoints and full disks ----------------------------------------------------------
def test_damaged_latest_falls_back_to_the_newest_valid_step(demo_data, tmp_path, capsys):
    run = tmp_path / "run"
    _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4, checkpoint_every=2))
    latest = run / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated
    (run / "checkpoints" / "step_0000004.pt").write_bytes(b"garbage")
    resumed = Trainer(resume=run, overrides=("train.max_steps=5",))
    assert resumed.resume_state["step"] == 2
    assert "latest.pt" in capsys.readouterr().err
    # A damaged file named directly: one line naming it and the fallback.
    result = CliRunner().invoke(main, ["train", "--resume", str(latest), "--dry-run"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "latest.pt" in result.output and "step_0000002.pt" in result.output


def test_disk_full_while_checkpointing_keeps_the_previous_one(demo_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=2))
    import i2i.files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(i2i.files.os, "fsync", full)
    with pytest.raises(TrainingError, match="latest.pt.*No space left"):
        Trainer(resume=run, overrides=("train.max_steps=3",)).fit()
    monkeypatch.undo()
    assert load_training_state(run / "checkpoints" / "latest.pt")["step"] == 2
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_the_run_page_reads_past_a_torn_metrics_line(tmp_path) -> None:
    from i2i.training.samples import latest_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "val/psnr": 20.5}\n{"step": 2, "val/ps')
    assert latest_metrics(tmp_path) == {"val/psnr": 20.5}
