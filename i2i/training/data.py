"""Batches for the loop: the loaders (resumable, per-rank) and the copy to the device."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from i2i.config import RunConfig
from i2i.data.datasets import ResumableSampler, SizedDataset, collate

__all__ = ["build_loader", "to_device", "first_items"]


def build_loader(
    dataset: SizedDataset, config: RunConfig, *, train: bool, rank: int, world_size: int, device: torch.device
) -> tuple[DataLoader, ResumableSampler]:
    """A loader over this rank's share of ``dataset`` (batches of ``data.batch_size`` for training,
    single items for validation) and its sampler, which resumes mid-epoch."""
    sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train, seed=config.seed)
    loader = DataLoader(
        dataset,
        batch_size=config.data.batch_size if train else 1,
        sampler=sampler,
        num_workers=config.data.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        # Workers are made anew each epoch so they see the data set's set_epoch().
        persistent_workers=False,
        # The loader draws its worker seeds from its own generator so that creating an
        # iterator never advances the global RNG (which resume restores exactly).
        generator=torch.Generator().manual_seed(config.seed),
    )
    return loader, sampler


def to_device(batch: dict, device: torch.device, *, channels_last: bool) -> dict:
    """``batch`` with its tensors on ``device`` (images channels-last on CUDA when asked)."""
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and device.type == "cuda" and v.ndim == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def first_items(loader: DataLoader | None, count: int = 4) -> dict | None:
    """The first ``count`` items of a validation loader as one batch (fewer when their sizes
    differ), so every sample grid shows the same images; None without a loader."""
    if loader is None:
        return None
    items: list[dict[str, Any]] = []
    for batch in loader:
        if items and batch["a"].shape != items[0]["a"].shape:
            break
        items.append(batch)
        if len(items) == count:
            break
    return {
        k: torch.cat([b[k] for b in items]) if torch.is_tensor(items[0][k]) else sum((b[k] for b in items), [])
        for k in items[0]
    }
