"""The toolkit's speed options change speed, never results (no timings here: see scripts/bench_*)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import tiny_pix2pix
from i2i.config import parse_config
from i2i.trainer import Trainer

_CHILD = textwrap.dedent(
    """
    import torch
    from i2i.host_memory import keep_freed_host_memory, kept_free_bytes
    applied = keep_freed_host_memory()
    block = torch.ones(50_000_000)  # 200 MB, far above glibc's largest mmap threshold
    del block
    print(applied, kept_free_bytes())
    """
)


def _run_child(env_value: str | None) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k != "I2I_HOST_MEMORY_CACHE"}
    if env_value is not None:
        env["I2I_HOST_MEMORY_CACHE"] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    applied, kept = out.stdout.split()
    return applied == "True", int(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_freed_host_memory_is_kept_for_reuse_unless_turned_off():
    applied, kept = _run_child(None)
    assert applied
    assert kept >= 200_000_000  # the freed block stays in the process, ready for the next tensor
    applied, kept = _run_child("0")
    assert not applied and kept == 0


def _two_steps(demo_data, tmp_path, fused: bool) -> Trainer:
    raw = tiny_pix2pix(demo_data / "edges2photo", tmp_path, max_steps=2)
    raw["train"]["fused_optimizer"] = fused
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    return trainer


def test_fused_adam_is_the_default_and_matches_the_per_parameter_loop(demo_data, tmp_path):
    fused = _two_steps(demo_data, tmp_path / "fused", True)
    plain = _two_steps(demo_data, tmp_path / "plain", False)
    assert all(g["fused"] for opt in fused.task.optimizers.values() for g in opt.param_groups)
    assert not any(g["fused"] or g["foreach"] for opt in plain.task.optimizers.values() for g in opt.param_groups)
    assert parse_config({"task": {"name": "pix2pix"}}).train.fused_optimizer
    untrained = Trainer(parse_config(tiny_pix2pix(demo_data / "edges2photo", tmp_path / "init"))).setup_task()
    for name, net in fused.task.networks.items():
        a, b = net.state_dict(), plain.task.networks[name].state_dict()
        for key in a:
            # Same update up to rounding: well within 1% of one Adam step (lr 1e-3).
            assert (a[key].float() - b[key].float()).abs().max() < 1e-5, f"{name}.{key}"
        # Both runs really trained: the weights left their common starting point.
        start = untrained.networks[name].state_dict()
        assert any(not torch.allclose(a[k], start[k]) for k in a if k.endswith("weight")), name


def test_resume_takes_the_optimizer_implementation_from_the_run_not_the_checkpoint(demo_data, tmp_path):
    plain = _two_steps(demo_data, tmp_path, False)
    resumed = Trainer(resume=plain.run_dir, overrides=("train.max_steps=3", "train.fused_optimizer=true"))
    resumed.fit()
    assert resumed.step == 3
    assert all(g["fused"] for opt in resumed.task.optimizers.values() for g in opt.param_groups)
    back = Trainer(resume=resumed.run_dir, overrides=("train.max_steps=4", "train.fused_optimizer=false"))
    back.fit()
    assert not any(g["fused"] for opt in back.task.optimizers.values() for g in opt.param_groups)
    # The moments and step counts came through the switch.
    optimizer = back.task.optimizers["G"]
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    assert int(state["step"]) == 4 and state["exp_avg_sq"].abs().sum() > 0
