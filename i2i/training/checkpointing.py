"""Training state: what a checkpoint holds, writing it (keeping the last K), and exact resume.

A checkpoint is tensors plus JSON-like values (``weights_only=True`` loads it): the networks, EMA
copies, optimizers, schedulers, the loss scaler, the task's extra state (CycleGAN's image pools),
every rank's random-number state and the resolved config as YAML text.
"""
from __future__ import annotations

import contextlib
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, cast

import numpy as np
import torch
import yaml

from i2i.checkpoint import load_training_state, save_generator, save_training_state
from i2i.config import RunConfig, apply_overrides, dump_config, parse_config, upgrade_saved_config
from i2i.errors import TrainingError, UsageError
from i2i.training.distributed import broadcast_buffers, gather_objects

if TYPE_CHECKING:
    from i2i.trainer import Trainer

__all__ = [
    "FORMAT",
    "seed_everything",
    "find_checkpoint",
    "load_resume",
    "read_state",
    "newest_valid_step",
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
    try:
        state = read_state(checkpoint)
    except TrainingError as exc:
        fallback = newest_valid_step(checkpoint.parent)
        if not Path(resume).is_dir() or fallback is None:
            offer = f" The newest valid one is {str(fallback[0])!r}: --resume {fallback[0]}." if fallback else ""
            raise TrainingError(f"{exc}{offer}") from None
        checkpoint, state = fallback
        print(f"Warning: {exc} Resuming from {checkpoint} (step {state['step']}) instead.", file=sys.stderr, flush=True)
    raw = apply_overrides(yaml.safe_load(state["config"]), overrides)
    return state, parse_config(upgrade_saved_config(raw)), checkpoint.parent.parent


def read_state(path: Path) -> dict[str, Any]:
    """The training state in ``path``; a truncated, damaged or foreign file raises a
    :class:`TrainingError` naming it."""
    try:
        state = load_training_state(path)
    except Exception as exc:  # torch reports damage as RuntimeError, EOFError, UnpicklingError...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"Checkpoint {str(path)!r} is damaged or truncated ({reason[:120]}).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("config"), str):
        raise TrainingError(f"Checkpoint {str(path)!r} is not an i2i training state (from `i2i train`).")
    return state


def newest_valid_step(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest ``step_*.pt`` in ``folder`` that reads as a training state, with its state."""
    for path in sorted(folder.glob("step_*.pt"), reverse=True):
        try:
            return path, read_state(path)
        except TrainingError:
            continue
    return None


def rng_state() -> dict[str, Any]:
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
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
    task = trainer.built_task
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
    task = trainer.built_task
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
    broadcast_buffers([*trainer.built_task.networks.values(), *trainer.ema.models.values()], trainer.world_size)
    state = training_state(trainer)
    if not trainer.is_main:
        return
    folder = trainer.run_dir / "checkpoints"
    target = folder / "latest.pt"
    try:
        if keep:
            target = folder / f"step_{trainer.step:07d}.pt"
            save_training_state(target, state)
            kept = sorted(folder.glob("step_*.pt"))
            for old in kept[: max(0, len(kept) - trainer.config.train.keep_last)]:
                old.unlink()
        target = folder / "latest.pt"
        save_training_state(target, state)
        task = trainer.built_task
        for stem, (name, info) in task.exported_generators().items():
            target = trainer.run_dir / f"{stem}.safetensors"
            save_generator(target, _unwrap(task.networks[name]), info)
            if name in trainer.ema:
                target = trainer.run_dir / f"{stem}_ema.safetensors"
                save_generator(target, trainer.ema[name], info)
    except OSError as exc:  # a full disk, a quota, a vanished mount: the writes are atomic
        raise TrainingError(
            f"Could not write {target} at step {trainer.step}: {exc.strerror or exc}. The previous file is "
            f"intact; free space and continue with: i2i train --resume {trainer.run_dir}"
        ) from None


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module)
