"""Stopping on Ctrl-C or SIGTERM (a scheduler's pre-emption): finish the step, save, exit cleanly."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

import torch

from i2i.training.distributed import max_over_ranks

__all__ = ["StopRequest"]


class StopRequest:
    """The first SIGINT/SIGTERM asks the loop to stop after the current step and save a
    checkpoint; a second one aborts at once. Under DDP every rank must stop at the same step, so
    the ranks agree at :meth:`should_stop` calls made with ``sync=True`` (at log steps)."""

    def __init__(self, printer: Callable[[str], None]) -> None:
        self.signal: int | None = None  # received by this process
        self.agreed = False  # every rank knows; the loop ends at this step
        self._printer = printer

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle the signals for the duration of the body (only possible on the main thread)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signal = signum
        self._printer("Stopping after this step and saving a checkpoint (press Ctrl-C again to abort).")

    def should_stop(self, *, sync: bool, device: torch.device, world_size: int) -> bool:
        """Whether the loop ends after this step. One process stops as soon as it is signalled;
        several stop when any rank was, found out at a step where ``sync`` is true."""
        if world_size == 1:
            self.agreed = self.agreed or self.signal is not None
        elif sync and not self.agreed:
            flag = max_over_ranks(self.signal or 0, device, world_size)
            if flag:
                self.signal = self.signal or flag
                self.agreed = True
        return self.agreed
