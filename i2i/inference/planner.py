"""Memory planning: whether an image fits on the device whole, which tile size and how many
images or tiles go together, and what to lower after an out-of-memory error.

``tile=None`` tiles only when the whole image would not fit (CUDA: 80% of
``torch.cuda.mem_get_info``; CPU: half the available RAM, at most 8 GiB) and then picks the tile
size from free memory (CPU: a quarter of the RAM, at most 1 GiB); ``tile=0`` never tiles;
``tile=N`` always uses N-pixel tiles (in input pixels). An out-of-memory error halves the batch,
then the tile size, with a warning; the smaller size is kept for the following images. At the
smallest tile, one at a time, it raises :class:`InferenceMemoryError`.

The memory one pixel needs is measured once by a probe pass that the caller supplies
(:meth:`i2i.inference.runner.Runner.peak_bytes`), so this module runs nothing on the device.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from i2i.errors import I2IError
from i2i.host_memory import kept_free_bytes
from i2i.imageops import round_up

__all__ = ["InferenceMemoryError", "MemoryPlanner", "Plan", "available_host_memory", "MIN_TILE", "MIN_SIDE"]

MIN_TILE = 32  # below this the overlap dominates; an OOM at this size is reported, not retried
MIN_SIDE = 8  # images are padded to at least this, so a ResNet's 1/4-size feature maps are 2 pixels
_CPU_BUDGET_CAP = 1 << 30  # bytes for tiles on the CPU
_CPU_WHOLE_CAP = 8 << 30  # bytes a whole image may take on the CPU before it is tiled


class InferenceMemoryError(I2IError, MemoryError):
    """The device ran out of memory even at the smallest tile size, one tile at a time."""


def available_host_memory() -> int:
    """Bytes of RAM available to new allocations: the kernel's ``MemAvailable`` plus what this
    process keeps freed for reuse (:mod:`i2i.host_memory`); 4 GiB when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 + kept_free_bytes()
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


@dataclass(frozen=True)
class Plan:
    """How one batch runs: ``tile`` (input pixels; None: whole images) and ``per_step`` images or
    tiles per device step, blended with ``overlap`` pixels between tiles."""

    tile: int | None
    per_step: int
    overlap: int


class MemoryPlanner:
    """Chooses a :class:`Plan` per batch size and learns from out-of-memory errors.

    Args:
        device: where the generator runs.
        size_multiple: the generator's size multiple; tiles are multiples of it.
        batch_size: the most images (or tiles) per step.
        tile, tile_overlap, memory_budget: the user's choices (see the module docstring).
        measure: ``measure(side)`` -> peak bytes of a forward pass on one ``side`` x ``side`` input.
        io_bytes_per_pixel: bytes per input pixel of the input and output tensors themselves.
    """

    def __init__(
        self,
        *,
        device: torch.device,
        size_multiple: int,
        batch_size: int,
        tile: int | None,
        tile_overlap: int,
        memory_budget: int | None,
        measure: Callable[[int], float],
        io_bytes_per_pixel: float,
    ) -> None:
        self.device = device
        self.size_multiple = size_multiple
        self.batch_size = batch_size
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.memory_budget = memory_budget
        self._measure = measure
        self._io_bytes = io_bytes_per_pixel
        # Learnt while running: lowered after out-of-memory errors, measured once.
        self.tile_cap: int | None = None
        self.batch_cap: int | None = None
        self._bytes_per_pixel: float | None = None

    def budget(self, *, whole: bool = False) -> int:
        """Bytes a forward pass may use. ``whole=True``: the limit for a whole image in one pass;
        otherwise the working budget that sizes tiles and batches.

        On CUDA both are 80% of the free (and cached) device memory. On the CPU a whole image may
        use up to half the available RAM (at most 8 GiB; the estimate is an upper bound), while tiles
        are sized for at most a quarter of it and 1 GiB, which keeps host memory for a 4K frame
        upscaled x4 around 2 GB.
        """
        if self.memory_budget:
            return int(self.memory_budget)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            return int(0.8 * (free + cached))
        available = available_host_memory()
        if whole:
            return int(min(0.5 * available, _CPU_WHOLE_CAP))
        return int(min(0.25 * available, _CPU_BUDGET_CAP))

    def probe_size(self) -> int:
        """The side of the probe pass; images no larger than this are never tiled automatically."""
        return round_up(max(64, self.size_multiple), self.size_multiple)

    def bytes_per_pixel(self) -> float:
        """Device memory one input pixel needs during a forward pass (measured once, then cached)."""
        if self._bytes_per_pixel is None:
            side = self.probe_size()
            self._bytes_per_pixel = self._measure(side) / side**2 + self._io_bytes
        return self._bytes_per_pixel

    def plan(self, batch: int, hp: int, wp: int) -> Plan:
        """The plan for ``batch`` images of padded size ``hp`` x ``wp``."""
        step = min(self.batch_size, self.batch_cap or self.batch_size)
        tile: int | None
        if self.tile_cap is not None:  # lowered after an out-of-memory error; overrides tile=0 too
            tile = self.tile_cap if not self.tile else min(self.tile, self.tile_cap)
        elif self.tile:
            tile = self.tile
        elif self.tile == 0 or hp * wp <= self.probe_size() ** 2:
            tile = None
        else:
            tile, step = self._automatic(hp, wp, step)
        if tile is not None:
            tile = max(self.size_multiple, round_up(tile, self.size_multiple))
            if tile < hp or tile < wp:
                return Plan(tile, step, min(self.tile_overlap, tile // 2))
        return Plan(None, min(step, batch), 0)

    def _automatic(self, hp: int, wp: int, step: int) -> tuple[int | None, int]:
        """``(tile or None, step)`` chosen from the memory budget."""
        bpp = self.bytes_per_pixel()
        whole = self.budget(whole=True)
        if hp * wp * bpp <= whole:
            return None, max(1, min(step, int(whole // (hp * wp * bpp))))
        budget = self.budget()
        tile = round_up(max(MIN_TILE, math.isqrt(int(budget / bpp))), self.size_multiple)
        return tile, max(1, min(step, int(budget // (tile * tile * bpp))))

    def shrink(self, plan: Plan, hp: int, wp: int) -> None:
        """After an out-of-memory error under ``plan``: halve the batch, else the tile size, with a
        warning; raise :class:`InferenceMemoryError` when nothing smaller is left."""
        where = str(self.device)
        if plan.per_step > 1:
            self.batch_cap = plan.per_step // 2
            warnings.warn(
                f"out of memory on {where} with {plan.per_step} {'tiles' if plan.tile else 'images'} at once; "
                f"retrying with {self.batch_cap}",
                RuntimeWarning,
                stacklevel=4,
            )
            return
        current = plan.tile if plan.tile is not None else max(hp, wp)
        smaller = current // 2 // self.size_multiple * self.size_multiple
        if smaller < max(MIN_TILE, self.size_multiple):
            raise InferenceMemoryError(
                f"out of memory on {where} even with {current}-pixel tiles, one at a time; "
                "free memory on the device, or use --device cpu"
            )
        self.tile_cap = smaller
        warnings.warn(f"out of memory on {where}; retrying with --tile {smaller}", RuntimeWarning, stacklevel=4)
