"""What a task may ask of whatever runs it: the trainer, or a small fake in a unit test.

A task never imports the trainer. The trainer implements :class:`TrainingContext` and attaches it
to the task (:meth:`i2i.tasks.base.Task.attach`); the task reaches it through its own methods
(``self.step``, ``self.make_adam``, ``self.device``, ``self.log``, ``self.print``), in the manner
of PyTorch Lightning's ``LightningModule``.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Mapping, Protocol

import torch
from torch import nn

__all__ = ["TrainingContext"]


class TrainingContext(Protocol):
    """The mechanics a task's ``train_step`` relies on; the algorithm stays in the task."""

    @property
    def device(self) -> torch.device:
        """Where the networks and batches are."""
        ...

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backpropagate ``loss`` and step ``optimizer``, then clear its gradients.

        Loss scaling for fp16, DDP's gradient averaging, and any accumulation or clipping of
        gradients happen here, so the task's update order is all the task decides.
        """
        ...

    def make_adam(
        self, params: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float]
    ) -> torch.optim.Adam:
        """Adam over ``params``, in the implementation the run is configured for."""
        ...

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's mixed-precision context (a no-op in fp32)."""
        ...

    def log(self, values: Mapping[str, torch.Tensor | float]) -> None:
        """Scalars to log with this step's losses (averaged over the log interval)."""
        ...

    def print(self, message: str) -> None:
        """Show a line to the user (once, from the main process, above the progress bar)."""
        ...
