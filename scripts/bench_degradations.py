#!/usr/bin/env python
"""Throughput of Real-ESRGAN's degradation model (`i2i.data.degradations`), with no model.

Images/s of ``Degrader`` followed by ``TrainingPairPool`` (Real-ESRGAN's default settings and pool
of 180) on random crops of scikit-image's photos, at two sizes:

* realesrgan: batch 12 of 400x400 GT, cropped to 256 (LQ 64), x4: Real-ESRGAN's training setting;
* small: batch 12 of 128x128 GT, cropped to 64 (LQ 16), x4.

The first batches fill the pool; timing starts after ``--warmup`` batches. Also printed: the share
of the time spent in the unsharp mask of the GT (which Real-ESRGAN computes on the full 400x400 tile).

    python scripts/bench_degradations.py
    python scripts/bench_degradations.py --device cuda --batches 50
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from i2i.data.degradations import DegradationConfig, Degrader, TrainingPairPool, usm_sharpen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_utils import synchronize  # noqa: E402

SETTINGS = {"realesrgan": (12, 400, 256), "small": (12, 128, 64)}  # batch, GT tile, crop


def photos() -> list[np.ndarray]:
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]


def gt_batches(batch: int, tile: int, count: int, device: torch.device) -> list[torch.Tensor]:
    """``count`` batches of random ``tile`` x ``tile`` crops (photos smaller than a tile are padded)."""
    rng = np.random.default_rng(0)
    sources = photos()
    out = []
    for _ in range(count):
        crops = []
        for _ in range(batch):
            image = sources[rng.integers(len(sources))]
            pad = ((0, max(0, tile - image.shape[0])), (0, max(0, tile - image.shape[1])), (0, 0))
            image = np.pad(image, pad, mode="reflect")
            top, left = rng.integers(image.shape[0] - tile + 1), rng.integers(image.shape[1] - tile + 1)
            crops.append(torch.from_numpy(image[top : top + tile, left : left + tile].copy()))
        out.append((torch.stack(crops).permute(0, 3, 1, 2).float() / 255).to(device))
    return out


def measure(name: str, device: torch.device, batches: int, warmup: int) -> tuple[float, float]:
    """(images/s of degrader + pool, share of time in the GT's unsharp mask)."""
    batch, tile, crop = SETTINGS[name]
    torch.manual_seed(0)
    np.random.seed(0)
    degrader = Degrader(DegradationConfig(), scale=4, crop_size=crop)
    pool = TrainingPairPool(DegradationConfig().pool_size)
    data = gt_batches(batch, tile, 4, device)
    for i in range(warmup):
        pool(*degrader(data[i % len(data)])[:2])
    synchronize(device)
    start = time.perf_counter()
    for i in range(batches):
        lq, gt, _ = degrader(data[i % len(data)])
        pool(lq, gt)
    synchronize(device)
    seconds = time.perf_counter() - start
    synchronize(device)
    usm_start = time.perf_counter()
    for i in range(batches):
        usm_sharpen(data[i % len(data)])
    synchronize(device)
    return batches * batch / seconds, (time.perf_counter() - usm_start) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per setting")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--settings", default="realesrgan,small")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# Real-ESRGAN degradations + pool; device {device} ({name}); {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {datetime.date.today()}")
    print(f"{'setting':<11} {'batch':>5} {'GT':>8} {'crop -> LQ':>11} {'images/s':>9} {'USM share':>9}")
    for setting in args.settings.split(","):
        batch, tile, crop = SETTINGS[setting]
        rate, usm_share = measure(setting, device, args.batches, args.warmup)
        print(f"{setting:<11} {batch:>5} {tile:>4}x{tile:<3} {crop:>4} -> {crop // 4:<3} {rate:>9.1f} {usm_share:>8.0%}", flush=True)


if __name__ == "__main__":
    main()
