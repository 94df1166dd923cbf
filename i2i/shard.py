"""Splitting inference work across processes started by torchrun (one or many machines).

Every process plans the same work in the same order, then takes its own share of it:
:meth:`Shard.take` round-robin by index (files of a folder: sizes even out), :meth:`Shard.range`
a contiguous block (frames of a video: each process encodes one stretch). Outside torchrun the
shard is the whole (rank 0 of 1), so callers use it unconditionally.

:meth:`Shard.barrier` and :meth:`Shard.gather` talk to the other processes through a gloo
process group made on first use (CPU-only collectives, so they work whatever device the model
runs on) and destroyed when the process exits. torch is imported only then.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

__all__ = ["Shard", "current_shard"]

# Ranks reach the final barrier when their share is done; shares of large images or videos may
# finish hours apart. A rank that crashes makes torchrun stop the others, so a long wait never hangs.
_BARRIER_TIMEOUT = timedelta(days=1)
_GROUP: list[Any] = []  # the gloo group, once made


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        return int(text) if text else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Shard:
    """This process's share: ``rank`` of ``world_size`` processes, ``local_rank`` of
    ``local_world_size`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True for the process that prints summaries (rank 0)."""
        return self.rank == 0

    def take(self, items: Sequence) -> list:
        """This rank's items: those whose index is ``rank`` modulo ``world_size``."""
        return [items[i] for i in range(self.rank, len(items), self.world_size)]

    def range(self, n: int) -> range:
        """This rank's contiguous block of ``range(n)``; the first ``n % world_size`` blocks are one longer."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for in one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier(group=_process_group())

    def gather(self, value: Any) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank; also a barrier."""
        if self.world_size == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=_process_group())
        return values


def current_shard() -> Shard:
    """The shard torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE``
    describe; rank 0 of 1 without them."""
    world_size = max(1, _environment_int("WORLD_SIZE", 1))
    if world_size == 1:
        return Shard()
    return Shard(
        _environment_int("RANK", 0), world_size, _environment_int("LOCAL_RANK", 0),
        max(1, _environment_int("LOCAL_WORLD_SIZE", 1)),
    )


def _process_group() -> Any:
    """The gloo group of all ranks: the default group when this module made it, else a new gloo
    group beside the one the caller made (e.g. NCCL, whose collectives need a GPU)."""
    if _GROUP:
        return _GROUP[0]
    import torch.distributed as dist

    if dist.is_initialized():
        _GROUP.append(dist.new_group(backend="gloo", timeout=_BARRIER_TIMEOUT))
    else:
        dist.init_process_group(backend="gloo", timeout=_BARRIER_TIMEOUT)
        _GROUP.append(dist.group.WORLD)
        atexit.register(_destroy_process_group)
    return _GROUP[0]


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _GROUP.clear()
