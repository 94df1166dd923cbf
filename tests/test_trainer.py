"""The common training loop, through pix2pix on real photo pairs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import tiny_pix2pix
from i2i.checkpoint import load_generator, load_training_state
from i2i.config import ConfigError, parse_config
from i2i.errors import UsageError
from i2i.trainer import Trainer, TrainingError
from i2i.training.hooks import Hook
from i2i.training.schedule import lr_factor


def _fit(raw: dict) -> Trainer:
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    return trainer


def _val_l1(run_dir: Path) -> list[float]:
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [l["val/l1"] for l in lines if "val/l1" in l]


def test_pix2pix_validation_l1_falls_on_real_photos(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "gray2color", tmp_path, max_steps=40, val_every=5)
    trainer = _fit(raw)
    l1 = _val_l1(trainer.run_dir)
    assert len(l1) == 8
    assert l1[-1] < 0.75 * l1[0], l1
    # The run folder holds everything a user looks at.
    run = trainer.run_dir
    for name in ("config.yaml", "generator.safetensors", "index.html", "checkpoints/latest.pt"):
        assert (run / name).exists(), name
    assert list((run / "samples").glob("step_*.png"))
    assert list((run / "tb").iterdir())
    # The exported generator is self-describing and reproduces the trained network.
    model, info = load_generator(run / "generator.safetensors")
    assert info.model == "unet" and info.kwargs["num_downs"] == 5 and info.task == "pix2pix"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    trainer.task.networks["G"].eval()
    assert torch.allclose(model(x), trainer.task.networks["G"](x), atol=1e-6)


def test_resume_is_exact(demo_data, tmp_path):
    common = dict(ema_decay=0.9)
    straight = _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path / "a", max_steps=10, **common))
    _fit(tiny_pix2pix(demo_data / "edges2photo", tmp_path / "b", max_steps=4, **common))
    resumed = Trainer(resume=tmp_path / "b" / "run", overrides=("train.max_steps=10",))
    resumed.fit()
    assert resumed.step == 10
    a = load_training_state(straight.run_dir / "checkpoints" / "latest.pt")
    b = load_training_state(resumed.run_dir / "checkpoints" / "latest.pt")
    for group in ("networks", "ema"):
        for net, tensors in a[group].items():
            for key, value in tensors.items():
                assert torch.equal(value, b[group][net][key]), f"{group}.{net}.{key}"
    assert a["optimizers"]["G"]["state"][0]["step"] == b["optimizers"]["G"]["state"][0]["step"]
    assert a["schedulers"]["G"]["last_epoch"] == b["schedulers"]["G"]["last_epoch"] == 10


def test_checkpoints_keep_last_k_and_refuse_to_overwrite_a_run(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=8, checkpoint_every=2, keep_last=2)
    trainer = _fit(raw)
    kept = sorted(p.name for p in (trainer.run_dir / "checkpoints").glob("step_*.pt"))
    assert kept == ["step_0000006.pt", "step_0000008.pt"]
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(parse_config(raw))


class SignalDuringStep(Hook):
    """Sends SIGTERM while step ``number`` runs (before its train_step)."""

    def __init__(self, number: int) -> None:
        self.number = number

    def before_step(self, trainer: Trainer) -> None:
        if trainer.step + 1 == self.number:
            os.kill(os.getpid(), 15)


def test_sigterm_saves_a_checkpoint_and_stops(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=1000)
    trainer = Trainer(parse_config(raw))
    trainer.register_hooks(SignalDuringStep(3))
    trainer.fit()
    assert trainer.step == 3
    state = load_training_state(trainer.run_dir / "checkpoints" / "latest.pt")
    assert state["step"] == 3


def test_paper_schedule_is_constant_then_linear_decay(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=6)
    raw["schedule"] = {"policy": "linear", "unit": "epoch", "n_epochs": 2, "n_epochs_decay": 2}
    schedule = parse_config(raw).schedule
    factors = [lr_factor(schedule, s, steps_per_epoch=5, total_steps=20) for s in range(0, 20, 5)]
    assert factors == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])


def test_nan_loss_stops_with_a_clear_message(demo_data, tmp_path):
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=4)
    raw["task"]["lr"] = float("inf")
    with pytest.raises(TrainingError, match="became nan|became inf"):
        _fit(raw)


def test_unknown_config_keys_list_the_valid_ones():
    with pytest.raises(ConfigError, match="Did you mean 'max_steps'.*Valid keys"):
        parse_config({"task": "pix2pix", "train": {"max_step": 3}})
    with pytest.raises(ConfigError, match="lambda_l1"):
        parse_config({"task": {"name": "pix2pix", "lamda_l1": 3}})
    with pytest.raises(ConfigError, match="one of pix2pix"):
        parse_config({"task": "pix3pix"})


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist, yaml
    from i2i.config import parse_config
    from i2i.trainer import Trainer
    raw = yaml.safe_load(open(sys.argv[1]))
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    weights = {k: v for k, v in trainer.task.networks["G"].state_dict().items()}
    torch.save(weights, sys.argv[2] + f"/rank{dist.get_rank()}.pt")
    dist.destroy_process_group()
    """
)


def test_ddp_two_gloo_processes_hold_identical_weights(demo_data, tmp_path):
    import yaml

    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path / "runs", max_steps=4)
    raw["train"]["device"] = "cpu"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "ddp.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(tmp_path / "ddp.py"), str(tmp_path / "config.yaml"), str(tmp_path),
    ]
    # Its own session, so that a hang kills the workers too and leaves no orphans behind.
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    # Training moved the weights away from the shared initialisation.
    from i2i.config import parse_config as parse
    from i2i.tasks import TASKS
    from i2i.trainer import seed_everything

    seed_everything(0)
    initial = TASKS["pix2pix"](parse(raw)).networks["G"].state_dict()
    assert any(not torch.equal(w0[k], initial[k]) for k in w0 if w0[k].is_floating_point())
    # Only rank 0 wrote the run folder: one log line per interval, no duplicates.
    lines = (tmp_path / "runs" / "run" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(l)["step"] for l in lines if "loss/D" in l]
    assert steps == [2, 4]


def _wandb_history(run_file: Path) -> list[dict]:
    """The history rows of an offline W&B run file: a LevelDB-style log (a 7-byte ':W&B' header,
    then records of 32 KiB blocks, each chunk behind a 7-byte header: crc, length, type) of
    protobuf ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending, rows = run_file.read_bytes(), 7, 32768, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows


def test_wandb_offline_run_holds_the_logged_metrics(demo_data, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name, value in {"SILENT": "true", "CONSOLE": "off", "X_DISABLE_STATS": "true", "X_DISABLE_MACHINE_INFO": "true",
                        "DISABLE_GIT": "true", "DISABLE_CODE": "true"}.items():  # less start-up work on a shared CPU
        monkeypatch.setenv(f"WANDB_{name}", value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    (tmp_path / "wandb_dir").mkdir()
    trainer = _fit(tiny_pix2pix(demo_data / "gray2color", tmp_path, max_steps=2, val_every=1, wandb=True, wandb_project="p"))
    wandb.teardown()  # W&B's service writes the run file's last records when it stops, as at process exit
    (run_file,) = (tmp_path / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb")
    assert run_file.stem == "run-" + (trainer.run_dir / "wandb_id").read_text()
    history = _wandb_history(run_file)
    logged: dict[int, dict] = {}
    for row in history:
        logged.setdefault(row["_step"], {}).update({k: v for k, v in row.items() if not k.startswith("_")})
    expected: dict[int, dict] = {}
    for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        expected.setdefault(record.pop("step"), {}).update(record)
    assert set(logged) == {1, 2} == set(expected)
    for step, values in expected.items():
        assert values.keys() <= logged[step].keys()
        assert all(logged[step][k] == pytest.approx(v) for k, v in values.items()), step


def test_wandb_on_without_the_package_is_one_clear_error(demo_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'i2i-toolkit\[wandb\]'"):
        Trainer(parse_config(tiny_pix2pix(demo_data / "gray2color", tmp_path, max_steps=1, wandb=True)))
    assert not (tmp_path / "run").exists()


def test_wandb_that_cannot_start_stops_before_the_first_step(demo_data, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")

    def no_login(**kwargs):
        raise wandb.errors.UsageError("No API key configured.")

    monkeypatch.setattr(wandb, "init", no_login)
    trainer = Trainer(parse_config(tiny_pix2pix(demo_data / "gray2color", tmp_path, max_steps=2, wandb=True)))
    with pytest.raises(UsageError, match=r"^Weights & Biases did not start: No API key configured\. .*WANDB_MODE=offline"):
        trainer.fit()
    assert trainer.step == 0 and not (trainer.run_dir / "checkpoints").exists()


def test_tensorboard_is_optional_and_can_be_turned_off(demo_data, tmp_path, monkeypatch, capsys):
    """TensorBoard is an extra: without the package a run says so once and goes on; off, no tb/."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    trainer = _fit(tiny_pix2pix(demo_data / "gray2color", tmp_path / "missing", max_steps=4))
    assert capsys.readouterr().out.count("TensorBoard logging is off (pip install 'i2i-toolkit[tensorboard]'") == 1
    assert not (trainer.run_dir / "tb").exists() and (trainer.run_dir / "metrics.jsonl").read_text().count("\n") >= 2
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    trainer = _fit(tiny_pix2pix(demo_data / "gray2color", tmp_path / "off", max_steps=2, tensorboard=False))
    assert "TensorBoard" not in capsys.readouterr().out and not (trainer.run_dir / "tb").exists()
