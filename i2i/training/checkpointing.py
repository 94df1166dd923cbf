"""Training state: what a checkpoint holds, writing it (keeping the last K), and exact resume.

A checkpoint is tensors plus JSON-like values (``weights_only=True`` loads it): the networks, EMA
copies, optimizers, schedulers, the loss scaler, the task's extra state (CycleGAN's image pools),
every rank's random-number state and the resolved config as YAML text.
"""
from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch
import yaml

from i2i.checkpoint import load_training_state, save_generator, save_training_state
from i2i.config import RunConfig, apply_overrides, dump_config, parse_config, upgrade_saved_config
from i2i.errors import UsageError
from i2i.training.distributed import broadcast_buffers, gather_objects

if TYPE_CHECKING:
    from i2i.trainer import Trainer

__all__ = [
    "FORMAT",
    "seed_everything",
    "find_checkpoint",
    "load_resume",
    "rng_state",
    "set_rng_state",
    "preserved_rng",
    "training_state",
    "restore_training_state",
    "save_checkpoint",
]

FORMAT = "i2i-training-state-1"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def find_checkpoint(path: str | Path) -> Path:
    """The training state to resume from: a ``.pt`` file, or a run folder's latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise UsageError(f"No checkpoint at {str(path)!r}; pass a run folder or a checkpoint file to --resume.")
    return path


def load_resume(resume: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> tuple[dict[str, Any], RunConfig, Path]:
    """The state, config and run folder of the run ``resume`` names (a folder or a ``.pt`` file).

    The config is the one stored in the checkpoint (keys renamed since then are mapped) with
    ``overrides`` applied, e.g. ``train.max_steps=N`` to extend the run. Reads; writes nothing.
    """
    checkpoint = find_checkpoint(resume)
    state = load_training_state(checkpoint)
    raw = apply_overrides(yaml.safe_load(state["config"]), overrides)
    return state, parse_config(upgrade_saved_config(raw)), checkpoint.parent.parent


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the body without moving any random-number generator the checkpoint restores.

    Validation and sample grids run inside this, so whether they ran at a step never changes
    what the training steps after it draw: a resumed run matches an uninterrupted one.
    """
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def training_state(trainer: "Trainer") -> dict[str, Any]:
    """The full state of ``trainer`` at its current step (a collective under DDP: every rank calls it)."""
    task = trainer.task
    return {
        "format": FORMAT,
        "step": trainer.step,
        "epoch": trainer.step // trainer.steps_per_epoch,
        "networks": {n: {k: v.cpu() for k, v in m.state_dict().items()} for n, m in task.networks.items()},
        "ema": trainer.ema.state_dict(),
        "optimizers": {n: o.state_dict() for n, o in task.optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in trainer.schedulers.items()},
        "scaler": trainer.context.scaler.state_dict(),
        "task": task.extra_state(),
        # Each rank has its own augmentation RNG.
        "rng": gather_objects(rng_state(), trainer.world_size),
        "config": dump_config(trainer.config),
    }


def restore_training_state(trainer: "Trainer", state: dict[str, Any]) -> None:
    """Continue from ``state``: optimizers, schedulers, scaler, task state, step and this rank's RNG.

    (Networks and EMA copies are restored when the task is set up, before they are wrapped.)
    """
    task = trainer.task
    for name, opt in task.optimizers.items():
        saved = state["optimizers"][name]
        # How the update runs (fused, foreach) is this run's setting, not the checkpoint's;
        # torch would otherwise restore it from the saved groups.
        groups = [
            {**group, **{k: live[k] for k in ("fused", "foreach") if k in live}}
            for group, live in zip(saved["param_groups"], opt.param_groups)
        ]
        opt.load_state_dict({**saved, "param_groups": groups})
    for name, sched in trainer.schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    trainer.context.scaler.load_state_dict(state["scaler"])
    task.load_extra_state(state.get("task", {}))
    trainer.step = int(state["step"])
    rngs = state["rng"]
    set_rng_state(rngs[trainer.rank] if trainer.rank < len(rngs) else rngs[0])


def save_checkpoint(trainer: "Trainer", *, keep: bool) -> None:
    """Write ``latest.pt`` (and ``step_N.pt`` when ``keep``, the last ``train.keep_last`` of them
    kept) and export the task's generators, EMA copies too. Every rank calls it; rank 0 writes."""
    broadcast_buffers([*trainer.task.networks.values(), *trainer.ema.models.values()], trainer.world_size)
    state = training_state(trainer)
    if not trainer.is_main:
        return
    folder = trainer.run_dir / "checkpoints"
    if keep:
        save_training_state(folder / f"step_{trainer.step:07d}.pt", state)
        kept = sorted(folder.glob("step_*.pt"))
        for old in kept[: max(0, len(kept) - trainer.config.train.keep_last)]:
            old.unlink()
    save_training_state(folder / "latest.pt", state)
    task = trainer.task
    for stem, (name, info) in task.exported_generators().items():
        save_generator(trainer.run_dir / f"{stem}.safetensors", _unwrap(task.networks[name]), info)
        if name in trainer.ema:
            save_generator(trainer.run_dir / f"{stem}_ema.safetensors", trainer.ema[name], info)


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module)
