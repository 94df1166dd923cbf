#!/usr/bin/env python
"""The data pipeline's own throughput, with no model: images/s from files to augmented batches.

For each task's training data path, exactly as the trainer builds it (its data set, loader,
sampler, collate, device copy and batched device-side augmentation), on real photos written by
``i2i data demo`` (scikit-image's and scikit-learn's packaged photos):

* pix2pix: aligned A|B pairs of 256x256, ``resize_and_crop`` (load 286, random 256 crop, flip);
* cyclegan: unaligned trainA/trainB of 256x256, the same preprocessing per domain;
* srgan: whole photos, random 128 HR tiles cut in the loader, then a 96 crop, flips and rotations
  and the bicubic x4 degradation on the device.

Printed per task and worker count: images/s of the loader alone (decode, resize, collate) and of
the full path (plus the device copy and augmentation). Compare with ``scripts/bench_train.py``:
the pipeline must outrun the training step by a wide margin.

    python scripts/bench_data.py
    python scripts/bench_data.py --tasks pix2pix --workers 0,2,4 --batches 40 --device cuda
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from i2i.config import parse_config
from i2i.data.demo import load_demo_photos, make_paired_demo, make_unpaired_demo
from i2i.data.io import write_image
from i2i.trainer import Trainer
from i2i.training.data import build_loader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_utils import synchronize  # noqa: E402


def make_data(task: str, folder: Path) -> tuple[Path, dict]:
    """A data folder for ``task`` and the data section that reads it."""
    if task == "pix2pix":
        make_paired_demo(folder, size=256, crops_per_photo=8)
        return folder / "edges2photo", {"load_size": 286, "crop_size": 256}
    if task == "cyclegan":
        return make_unpaired_demo(folder, size=256, crops_per_photo=8), {"load_size": 286, "crop_size": 256}
    if task == "srgan":
        for _, info, photo in load_demo_photos():
            write_image(folder / "sr" / "train" / f"{info.name}.png", photo)
        return folder / "sr", {"load_size": 128, "crop_size": 96}
    raise SystemExit(f"unknown task {task!r}; use pix2pix, cyclegan or srgan")


def measure(task: str, root: Path, data: dict, *, batch: int, workers: int, batches: int, device: str, out: Path) -> tuple[float, float]:
    """(loader-only images/s, full-path images/s) over ``batches`` batches after one warm-up batch."""
    raw = {
        "task": {"name": task, **({"stage": "psnr"} if task == "srgan" else {})},
        "data": {"root": str(root), "batch_size": batch, "num_workers": workers, **data},
        "train": {"device": device, "output_dir": str(out)},
    }
    trainer = Trainer(parse_config(raw))
    task_obj = trainer.setup_task()
    dataset = task_obj.build_dataset(trainer.config.data.train_split, train=True)
    loader, sampler = build_loader(
        dataset, trainer.config, train=True, rank=trainer.rank, world_size=trainer.world_size, device=trainer.device
    )

    def batches_forever():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            yield from loader
            epoch += 1

    figures = []
    for full in (False, True):
        stream = batches_forever()
        next(stream)  # workers started, files in the page cache
        start = time.perf_counter()
        images = 0
        for _ in range(batches):
            item = next(stream)
            if full:
                item = task_obj.augment(trainer.to_device(item), train=True)
                synchronize(trainer.device)
            images += item["b"].shape[0]
        figures.append(images / (time.perf_counter() - start))
        del stream
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="pix2pix,cyclegan,srgan")
    parser.add_argument("--workers", default="0,2", help="loader worker counts to try")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: 16 for srgan, 1 otherwise)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or platform.machine()}"
    print(f"# data pipeline, no model; device {args.device} ({name}); torch {torch.__version__}; "
          f"{torch.get_num_threads()} threads; {datetime.date.today()}")
    print(f"{'task':<9} {'batch':>5} {'workers':>7} {'loader img/s':>13} {'full path img/s':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            root, data = make_data(task, Path(tmp) / task)
            batch = args.batch or (16 if task == "srgan" else 1)
            for workers in (int(w) for w in args.workers.split(",")):
                loader_rate, full_rate = measure(
                    task, root, data, batch=batch, workers=workers, batches=args.batches, device=args.device,
                    out=Path(tmp) / "runs",
                )
                print(f"{task:<9} {batch:>5} {workers:>7} {loader_rate:>13.1f} {full_rate:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
