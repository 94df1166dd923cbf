#!/usr/bin/env python
"""Reproduce i2i's bundled x4 super-resolution model (``i2i/assets/sr_x4.safetensors``).

1. Writes real photos that scikit-image and scikit-learn ship into ``WORK/photos/train`` and
   ``WORK/photos/val``; the photos in ``val`` (HELD_OUT) are never trained on.
2. Trains ``configs/sr_x4_default.yaml`` on them with the project's own trainer (CPU is fine:
   about 15-25 minutes on two cores).
3. Evaluates the EMA generator against bicubic on the held-out photos with the published
   conventions (``i2i eval``: Y channel, border crop 4, uint8).
4. With ``--install``, copies the generator into the package as ``i2i/assets/sr_x4.safetensors``
   (recording the recipe and the held-out photos in its metadata).

    python scripts/train_default_sr.py                     # WORK = runs/sr_x4_default_work
    python scripts/train_default_sr.py --install --threads 1
    python scripts/train_default_sr.py --set train.max_steps=100   # a quick trial
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sr_x4_default.yaml"
ASSET = ROOT / "i2i" / "assets" / "sr_x4.safetensors"

#: (file name, loader) of every photo used; the catalogue order is fixed.
TRAIN = (
    "astronaut", "rocket", "motorcycle", "china", "hubble_deep_field", "immunohistochemistry",
    "retina", "brick", "grass", "gravel", "moon", "clock", "coins",
)
#: Photos kept out of training: validation during training and the reported evaluation.
HELD_OUT = ("chelsea", "coffee", "flower", "camera")


def load_photo(name: str) -> np.ndarray:
    """One photo as (H, W, 3) or (H, W) uint8."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    loader = {"motorcycle": "stereo_motorcycle"}.get(name, name)
    image = getattr(skimage.data, loader)()
    image = image[0] if isinstance(image, tuple) else image  # stereo pair: the left view
    return np.asarray(image, dtype=np.uint8)


def prepare_photos(folder: Path) -> Path:
    from i2i.data.io import write_image

    for split, names in (("train", TRAIN), ("val", HELD_OUT)):
        out = folder / split
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = out / f"{name}.png"
            if not path.exists():
                write_image(path, load_photo(name))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "sr_x4_default_work")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--install", action="store_true", help=f"copy the trained generator to {ASSET}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from i2i.checkpoint import read_generator_info, save_generator, load_generator
    from i2i.config import load_config
    from i2i.evaluation import evaluate_sr, format_report
    from i2i.trainer import Trainer

    photos = prepare_photos(args.work / "photos")
    overrides = [f"data.root={photos}", f"train.output_dir={args.work / 'runs'}", *args.overrides]
    config = load_config(CONFIG, overrides)
    start = time.perf_counter()
    trainer = Trainer(config)
    run_dir = trainer.fit()
    minutes = (time.perf_counter() - start) / 60
    generator = run_dir / "generator_ema.safetensors"
    print(f"trained {trainer.step} steps in {minutes:.1f} min -> {generator}")

    report = evaluate_sr(generator, photos / "val", scale=4)
    print(format_report(report))

    if args.install:
        model, info = load_generator(generator)
        info = replace(
            info,
            extra={
                "recipe": "configs/sr_x4_default.yaml (scripts/train_default_sr.py)",
                "train_photos": list(TRAIN),
                "held_out_photos": list(HELD_OUT),
                "steps": trainer.step,
                "held_out_y_psnr": round(report.mean["model_psnr"], 3),
                "held_out_bicubic_y_psnr": round(report.mean["bicubic_psnr"], 3),
            },
        )
        save_generator(ASSET, model, info)
        print(f"installed {ASSET} ({ASSET.stat().st_size / 1e6:.2f} MB): {read_generator_info(ASSET).extra}")


if __name__ == "__main__":
    main()
