"""The contract between a task (the algorithm) and the trainer (the mechanics).

A task owns its networks, losses and optimizers and implements :meth:`Task.train_step`, which does
its own updates through ``trainer.backward(loss, optimizer)``. The trainer places the networks on
the device, wraps them for DDP / ``torch.compile``, schedules learning rates, keeps EMA copies,
checkpoints, logs and validates. It never looks inside a network.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from i2i.checkpoint import GeneratorInfo
    from i2i.data.augment import PairedAugment
    from i2i.config import RunConfig
    from i2i.trainer import Trainer

__all__ = ["Task", "set_requires_grad"]


def set_requires_grad(modules: list[nn.Module] | nn.Module, flag: bool) -> None:
    """Freeze or unfreeze parameters (a discriminator while its generator is updated)."""
    for module in modules if isinstance(modules, list) else [modules]:
        for p in module.parameters():
            p.requires_grad_(flag)


class Task:
    """Base class of pix2pix, CycleGAN and SRGAN.

    Subclasses set ``name`` and ``config_class``, build ``self.networks`` in ``__init__`` and
    implement the methods below. ``self.nets`` holds what the trainer made of each network for
    training (a DDP or compiled wrapper, or the module itself); use ``self.networks`` for forward
    passes that must not synchronise gradients, such as a frozen discriminator in the generator
    update.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: Networks whose exponential moving average the trainer keeps when ``train.ema_decay`` > 0.
    ema_networks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: "RunConfig") -> None:
        self.config = config
        self.networks: dict[str, nn.Module] = {}
        self.nets: dict[str, nn.Module] = {}
        self.trainer: "Trainer | None" = None
        self.augmentation: "PairedAugment | None" = None

    # --- set-up -------------------------------------------------------------------------------
    def build_dataset(self, split: str, *, train: bool) -> Dataset:
        """The data set of ``split`` for training (``train=True``) or validation."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers over the parameters of ``self.networks`` (already on the device)."""
        raise NotImplementedError

    def attach(self, trainer: "Trainer", nets: dict[str, nn.Module]) -> None:
        self.trainer = trainer
        self.nets = nets

    # --- training -----------------------------------------------------------------------------
    def augment(self, batch: dict, *, train: bool) -> dict:
        """Device-side preprocessing of a batch already on the device.

        With ``self.augmentation`` (a :class:`~i2i.data.augment.PairedAugment`), training batches
        get its random crop, flip and jitter and evaluation batches its central crop.
        """
        if self.augmentation is not None:
            step = self.augmentation if train else self.augmentation.center
            batch["a"], batch["b"] = step(batch["a"], batch["b"])
        return batch

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``; returns detached scalar losses by name.

        The values stay tensors so the step needs no host-device synchronisation; the trainer
        turns them into floats when it logs.
        """
        raise NotImplementedError

    # --- evaluation and export ----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        """Images for grids and validation: a dict of (B, C, H, W) tensors in the value range.

        ``networks`` maps names to the modules to use (EMA copies when the trainer has them).
        Must contain ``"output"`` and ``"target"`` for validation metrics.
        """
        raise NotImplementedError

    def sample_rows(self) -> tuple[tuple[str, ...], ...]:
        """How sample grids are laid out: for each group, keys of :meth:`predict`'s result shown
        side by side, one row per image."""
        return (("input", "output", "target"),)

    def validation_metrics(self, images: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics of one validation batch (``images`` from :meth:`predict`), averaged over the
        split by the trainer. The default compares ``output`` with ``target``: L1, PSNR, SSIM."""
        from i2i.imageops import to_unit_range
        from i2i.metrics import image_metrics

        rng = self.value_range
        return image_metrics(to_unit_range(images["output"], rng), to_unit_range(images["target"], rng))

    def validation_summary(self, gather) -> dict[str, float]:
        """Metrics of the whole split, computed after every batch went through
        :meth:`validation_metrics` (FID, say). ``gather(tensor)`` concatenates a tensor across
        DDP ranks along dim 0 (the identity on one process)."""
        return {}

    def exported_generators(self) -> dict[str, tuple[str, "GeneratorInfo"]]:
        """Files the run exports: ``{file stem: (network name, info)}``."""
        raise NotImplementedError

    @property
    def value_range(self) -> tuple[float, float]:
        return (-1.0, 1.0)

    def extra_state(self) -> dict[str, Any]:
        """Task state beyond networks and optimizers to checkpoint (an image pool, say)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
