"""The loop's hooks: each cross-cutting job of a run is one hook (detectron2's ``engine/hooks.py``).

The loop calls every hook's :meth:`Hook.before_train` once, :meth:`Hook.before_step` and
:meth:`Hook.after_step` around each step (after ``trainer.step`` has counted it), and
:meth:`Hook.after_train` at the end, in the order of :func:`default_hooks`. New behaviour is a new
hook, added with ``Trainer.register_hooks``, not another branch in the loop.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from i2i.errors import TrainingError
from i2i.training.checkpointing import preserved_rng, save_checkpoint
from i2i.training.data import first_items
from i2i.training.distributed import mean_over_ranks
from i2i.training.samples import refresh_run_page, write_samples

if TYPE_CHECKING:
    from i2i.config import RunConfig
    from i2i.trainer import Trainer

__all__ = [
    "Hook",
    "LRScheduleHook",
    "EMAHook",
    "ProgressHook",
    "LossLogHook",
    "CheckpointHook",
    "SampleHook",
    "ValidationHook",
    "default_hooks",
]


class Hook:
    """A job done around the training steps; override what it needs."""

    def before_train(self, trainer: "Trainer") -> None:
        pass

    def before_step(self, trainer: "Trainer") -> None:
        """Before the task's ``train_step``; ``trainer.batch`` is the raw batch on the device."""

    def after_step(self, trainer: "Trainer") -> None:
        """After the step ``trainer.step`` counts; ``trainer.losses`` holds its losses."""

    def after_train(self, trainer: "Trainer") -> None:
        """After the last step, or the step a stop signal ended the run at (``trainer.stopped``)."""


def _due(trainer: "Trainer", every: int) -> bool:
    return trainer.step % every == 0


class LRScheduleHook(Hook):
    """Steps every learning-rate scheduler once per training step."""

    def after_step(self, trainer: "Trainer") -> None:
        for scheduler in trainer.schedulers.values():
            scheduler.step()


class EMAHook(Hook):
    """Moves the EMA copies towards the live networks after each step."""

    def after_step(self, trainer: "Trainer") -> None:
        trainer.ema.update(trainer.built_task.networks)


class ProgressHook(Hook):
    """The progress bar."""

    def before_train(self, trainer: "Trainer") -> None:
        trainer.run_log.open_progress(total=trainer.total_steps, initial=trainer.step, desc=trainer.built_task.name)

    def after_step(self, trainer: "Trainer") -> None:
        trainer.run_log.advance()


class LossLogHook(Hook):
    """Mean losses over each ``log_every`` steps (and ranks) into ``metrics.jsonl``, TensorBoard
    and the progress bar; a loss that is no longer finite stops the run with a clear error."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def after_step(self, trainer: "Trainer") -> None:
        for k, v in trainer.losses.items():
            self.sums[k] = self.sums[k] + v.float() if k in self.sums else v.float()
        self.count += 1
        if _due(trainer, self.every) or trainer.step == trainer.total_steps:
            self.flush(trainer, epoch=(trainer.step - 1) // trainer.steps_per_epoch)

    def after_train(self, trainer: "Trainer") -> None:
        if self.count:
            self.flush(trainer, epoch=trainer.step // trainer.steps_per_epoch)

    def flush(self, trainer: "Trainer", *, epoch: int) -> None:
        sums, count, self.sums, self.count = self.sums, self.count, {}, 0
        if not sums:
            return
        names = list(sums)
        values = mean_over_ranks(torch.stack([sums[k] for k in names]) / count, trainer.world_size)
        floats = values.tolist()  # the one host sync per log interval
        bad = [n for n, v in zip(names, floats) if not math.isfinite(v)]
        if bad:
            fp16 = trainer.context.autocast_dtype == torch.float16
            hint = " Use train.precision=bf16 or fp32 instead of fp16," if fp16 else ""
            raise TrainingError(
                f"Loss {', '.join(bad)} became {floats[names.index(bad[0])]} by step {trainer.step}.{hint} "
                "lower the learning rate, or check the data for broken images. The last checkpoint is intact."
            )
        lr = trainer.schedulers[next(iter(trainer.schedulers))].get_last_lr()[0]
        record = {"step": trainer.step, "epoch": epoch, "lr": lr}
        record.update({f"loss/{n}": v for n, v in zip(names, floats)})
        trainer.run_log.event(record)
        losses = ", ".join(f"loss/{n} {v:.4g}" for n, v in zip(names, floats))
        trainer.run_log.note(f"step {trainer.step}: lr {lr:.3g}, {losses}")
        trainer.run_log.show({n: f"{v:.3g}" for n, v in zip(names, floats)})


class CheckpointHook(Hook):
    """``step_N.pt`` every ``every`` steps (the last ``train.keep_last`` kept) and ``latest.pt`` at
    the end, with the exported generators; first of the end-of-run jobs, so an error in a later
    one never costs the run's last steps."""

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, trainer: "Trainer") -> None:
        if _due(trainer, self.every):
            save_checkpoint(trainer, keep=True)

    def after_train(self, trainer: "Trainer") -> None:
        save_checkpoint(trainer, keep=False)


class SampleHook(Hook):
    """A grid of the same few images every ``every`` steps and at the end: the first validation
    items, or without a validation split the first training batch."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.batch: dict | None = None

    def before_train(self, trainer: "Trainer") -> None:
        if trainer.is_main:
            with preserved_rng():
                self.batch = first_items(trainer.val_loader)

    def before_step(self, trainer: "Trainer") -> None:
        if self.batch is None:  # no validation split: show training images
            self.batch = {k: v[:4] for k, v in trainer.batch.items()}

    def after_step(self, trainer: "Trainer") -> None:
        if _due(trainer, self.every):
            write_samples(trainer, self.batch)

    def after_train(self, trainer: "Trainer") -> None:
        if not trainer.stopped and not _due(trainer, self.every):
            write_samples(trainer, self.batch)


class ValidationHook(Hook):
    """Validation every ``every`` steps and at the end (:meth:`Trainer.validate`); the run page is
    rewritten after each, so its numbers are the ones just measured, under their own step."""

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self, trainer: "Trainer") -> None:
        if _due(trainer, self.every) and trainer.validate() is not None:
            refresh_run_page(trainer)

    def after_train(self, trainer: "Trainer") -> None:
        if not trainer.stopped and not _due(trainer, self.every) and trainer.validate() is not None:
            refresh_run_page(trainer)


def default_hooks(config: "RunConfig") -> list[Hook]:
    """Every run's hooks, in the order they run."""
    t = config.train
    return [
        LRScheduleHook(),
        EMAHook(),
        ProgressHook(),
        LossLogHook(t.log_every),
        CheckpointHook(t.checkpoint_every),
        SampleHook(t.sample_every),
        ValidationHook(t.val_every),
    ]
