"""DDP through torchrun: the process group, and the few collectives the loop needs.

Every function is the identity (or a no-op) on a single process, so the loop calls them
unconditionally.
"""
from __future__ import annotations

import io
import os
from typing import Any, Iterable, cast

import torch
import torch.distributed as dist
from torch import nn

from i2i.shard import Shard, current_shard

__all__ = [
    "init_distributed",
    "wrap_for_training",
    "broadcast_object",
    "gather_objects",
    "gather_tensor",
    "sum_over_ranks",
    "mean_over_ranks",
    "max_over_ranks",
    "broadcast_buffers",
]


def init_distributed(device: torch.device) -> Shard:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU) when there is more than one
    process; a group someone else initialised is joined as it is. Returns this process's place,
    the same :class:`~i2i.shard.Shard` inference uses."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        local = current_shard()
        return Shard(dist.get_rank(), dist.get_world_size(), local.local_rank, local.local_world_size)
    return Shard()


def wrap_for_training(module: nn.Module, device: torch.device, world_size: int, *, compile: bool) -> nn.Module:
    """What the task trains through: DDP across processes, ``torch.compile`` when asked."""
    if world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    if compile:
        return cast(nn.Module, torch.compile(module))
    return module


def broadcast_object(value: Any, world_size: int) -> Any:
    """Rank 0's ``value`` on every rank."""
    if world_size == 1:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def gather_objects(value: Any, world_size: int) -> list[Any]:
    """Every rank's ``value`` (tensors allowed), in rank order."""
    if world_size == 1:
        return [value]
    # Sent as torch.save bytes: tensors do not survive all_gather_object's pickling here.
    buffer = io.BytesIO()
    torch.save(value, buffer)
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, buffer.getvalue())
    return [torch.load(io.BytesIO(p), weights_only=True) for p in parts]


def gather_tensor(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (sizes may differ between ranks)."""
    if world_size == 1:
        return tensor
    return torch.cat(gather_objects(tensor.detach().cpu(), world_size)).to(tensor.device)


def sum_over_ranks(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        dist.all_reduce(values)
    return values


def mean_over_ranks(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        dist.all_reduce(values)
        values /= world_size
    return values


def max_over_ranks(value: int, device: torch.device, world_size: int) -> int:
    if world_size == 1:
        return value
    flag = torch.tensor([value], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag)


def broadcast_buffers(modules: Iterable[nn.Module], world_size: int) -> None:
    """Make rank 0's buffers every rank's.

    DDP broadcasts buffers (BatchNorm statistics) only at the start of a forward, so after a step
    each rank holds its own; validation and checkpoints use rank 0's.
    """
    if world_size > 1:
        for module in modules:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)
