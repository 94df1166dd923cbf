"""Sample grids: a few images through the task's networks, written as ``samples/step_N.png``
beside the run's HTML page, which :func:`refresh_run_page` rewrites after every grid and every
validation."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from i2i.data.io import write_image
from i2i.imageops import to_unit_range
from i2i.report import write_run_page
from i2i.tasks.base import Task

if TYPE_CHECKING:
    from pathlib import Path

    from i2i.trainer import Trainer

__all__ = ["render_grid", "write_samples", "read_metrics", "latest_metrics", "refresh_run_page"]


def render_grid(task: Task, images: dict[str, torch.Tensor]) -> np.ndarray:
    """One (H, W, 3) uint8 grid: for each group of :meth:`Task.sample_rows`, one row per image with
    the group's images side by side (shorter images padded at the bottom)."""
    rows = []
    for group in task.sample_rows():
        columns = [to_unit_range(images[k], task.value_range) for k in group if k in images]
        height = max(c.shape[-2] for c in columns)
        for i in range(columns[0].shape[0]):
            cells = [c[i].expand(3, -1, -1) for c in columns]
            cells = [F.pad(c, (0, 0, 0, height - c.shape[-2])) for c in cells]
            rows.append(torch.cat(cells, dim=2))
    width = max(r.shape[-1] for r in rows)
    grid = torch.cat([F.pad(r, (0, width - r.shape[-1])) for r in rows], dim=1)
    return (grid.permute(1, 2, 0).float().cpu().numpy() * 255.0).round().astype(np.uint8)


def read_metrics(run_dir: "Path") -> list[dict[str, Any]]:
    """``metrics.jsonl``'s records in order; a torn or unparsable line is skipped."""
    records: list[dict[str, Any]] = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a full disk; the run log reports it on resume
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def latest_metrics(run_dir: "Path") -> dict[str, float]:
    """The latest value of every float metric in ``metrics.jsonl``."""
    latest: dict[str, Any] = {}
    for record in read_metrics(run_dir):
        latest.update(record)
    return {k: v for k, v in latest.items() if isinstance(v, float)}


def refresh_run_page(trainer: "Trainer") -> None:
    """Rewrite the run's ``index.html`` from ``metrics.jsonl`` and the grids so far (main process)."""
    if not trainer.is_main or trainer.task is None:
        return
    write_run_page(
        trainer.run_dir,
        step=trainer.step,
        total_steps=trainer.total_steps,
        columns="; ".join(" | ".join(group) for group in trainer.task.sample_rows()),
        records=read_metrics(trainer.run_dir),
    )


def write_samples(trainer: "Trainer", batch: dict | None) -> None:
    """The grid of ``batch`` (raw, as the loader gives it) at the trainer's step, and the run page.
    Only the main process writes."""
    if batch is None or not trainer.is_main:
        return
    task = trainer.built_task
    batch = task.augment(trainer.to_device(batch), train=False)
    with trainer.evaluating() as networks:
        images = task.predict(batch, networks)
    write_image(trainer.run_dir / "samples" / f"step_{trainer.step:07d}.png", render_grid(task, images))
    refresh_run_page(trainer)
