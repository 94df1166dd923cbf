"""Validation: the task's metrics over the validation split, averaged across batches and ranks."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader

from i2i.tasks.base import Task
from i2i.training.distributed import gather_tensor, sum_over_ranks

__all__ = ["evaluation_mode", "evaluate"]


@contextlib.contextmanager
def evaluation_mode(
    networks: Mapping[str, nn.Module], autocast: Callable[[], contextlib.AbstractContextManager]
) -> Iterator[dict[str, nn.Module]]:
    """``networks`` in eval mode, without gradients, under the run's autocast; their training
    modes come back afterwards."""
    networks = dict(networks)
    modes = {name: m.training for name, m in networks.items()}
    for m in networks.values():
        m.eval()
    try:
        with torch.no_grad(), autocast():
            yield networks
    finally:
        for name, m in networks.items():
            m.train(modes[name])


def evaluate(
    task: Task,
    networks: Mapping[str, nn.Module],
    loader: DataLoader,
    *,
    to_device: Callable[[dict], dict],
    world_size: int,
    device: torch.device,
    progress: bool = False,
) -> dict[str, float]:
    """``val/<name>`` means of :meth:`Task.validation_metrics` over the split (every rank's share),
    plus :meth:`Task.validation_summary`. Call inside :func:`evaluation_mode`. ``progress`` shows
    a bar (rate, ETA) that is cleared when done, under the training bar."""
    from tqdm import tqdm

    totals: dict[str, float] = {}
    n = 0
    for batch in tqdm(loader, desc="validation", unit="batch", leave=False, disable=not progress, dynamic_ncols=True):
        batch = task.augment(to_device(batch), train=False)
        for k, v in task.validation_metrics(task.predict(batch, dict(networks))).items():
            totals[k] = totals.get(k, 0.0) + v
        n += 1
    if world_size > 1:
        keys = sorted(totals)
        t = torch.tensor([totals[k] for k in keys] + [n], dtype=torch.float64, device=device)
        t = sum_over_ranks(t, world_size)
        totals, n = dict(zip(keys, t[:-1].tolist())), int(t[-1])
    result = {f"val/{k}": v / max(n, 1) for k, v in totals.items()}
    summary = task.validation_summary(lambda tensor: gather_tensor(tensor, world_size))
    result.update({f"val/{k}": v for k, v in summary.items()})
    return result
