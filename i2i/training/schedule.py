"""Learning-rate schedules and the run's length, as plain functions of the config."""
from __future__ import annotations

import bisect
import functools
import math

import torch

from i2i.config import RunConfig, ScheduleConfig

__all__ = ["total_steps", "lr_factor", "build_schedulers"]


def total_steps(config: RunConfig, steps_per_epoch: int) -> int:
    """How many optimiser steps the run takes: ``train.max_steps``, else ``train.epochs``, else the
    linear schedule's ``n_epochs + n_epochs_decay`` (in its unit)."""
    t, s = config.train, config.schedule
    if t.max_steps:
        return t.max_steps
    epochs = t.epochs or (s.n_epochs + s.n_epochs_decay)
    return epochs if s.unit == "step" and not t.epochs else epochs * steps_per_epoch


def lr_factor(schedule: ScheduleConfig, step: int, *, steps_per_epoch: int, total_steps: int) -> float:
    """The learning-rate multiplier after ``step`` optimiser steps."""
    s = schedule
    unit = step if s.unit == "step" else step // steps_per_epoch
    if s.policy == "linear":
        return 1.0 - max(0, unit + 1 - s.n_epochs) / float(s.n_epochs_decay + 1)
    if s.policy == "step":
        return s.gamma ** (unit // s.step_size)
    if s.policy == "multistep":
        return s.gamma ** bisect.bisect_right(s.milestones, unit)
    if s.policy == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    return 1.0


def build_schedulers(
    optimizers: dict[str, torch.optim.Optimizer], schedule: ScheduleConfig, *, steps_per_epoch: int, total_steps: int
) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """One scheduler per optimizer, stepped once per training step."""
    # A partial, not a lambda: its (empty) __dict__ is what LambdaLR checkpoints.
    factor = functools.partial(lr_factor, schedule, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}
