#!/usr/bin/env python
"""Training throughput of a task's default recipe, in two modes.

* plain:     fp32, eager, contiguous NCHW: the arithmetic of the public reference code;
* optimized: the toolkit's defaults for this device (bf16 autocast and channels_last on CUDA).

The networks, optimizers and train_step are the real ones, built by the trainer; the batch is a
fixed random tensor already on the device, so this measures the model step, not data loading.

    python scripts/bench_train.py                       # pix2pix, 256x256, batch 1, this device
    python scripts/bench_train.py --batch 16 --steps 20 --device cuda
    python scripts/bench_train.py --task srgan          # SRGAN stage 2, 96x96 HR crops, batch 16
    python scripts/bench_train.py --task srgan --stage psnr

For SRGAN the batch is LR ``size/scale`` inputs and ``size`` HR targets in [0, 1], and the task is
the paper recipe's default (SRResNet 16x64 with batch norm, PatchGAN, VGG19 conv5_4 perceptual
loss). Without torchvision's VGG19 weights on disk, a randomly initialised VGG19 of the same shape
is used (same arithmetic cost) and the output says so.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch

from i2i.config import parse_config
from i2i.trainer import Trainer

MODES = {
    "plain": {"precision": "fp32", "channels_last": False, "compile": False},
    "optimized": {"precision": "auto", "channels_last": True},
}


def random_vgg19_weights(folder: Path) -> Path:
    """A torchvision-format VGG19 feature file with random weights (for timing only)."""
    from i2i.losses import VGG19_LAYERS, _vgg19_stack

    path = folder / "vgg19_random.pth"
    state = _vgg19_stack(VGG19_LAYERS["conv5_4"]).state_dict()
    torch.save({f"features.{k}": v for k, v in state.items()}, path)
    return path


def bench(
    task: str, mode: str, *, size: int, batch: int, steps: int, warmup: int, device: str, compile_: bool,
    task_options: dict | None = None,
) -> dict:
    train = {"device": device, **MODES[mode]}
    if mode == "optimized":
        train["compile"] = compile_
    task_section = {"name": task, **(task_options or {})}
    config = parse_config({"task": task_section, "data": {"crop_size": size, "load_size": size, "batch_size": batch}, "train": train})
    trainer = Trainer(config)
    task_obj = trainer.setup_task()
    dev = trainer.device
    g = torch.Generator().manual_seed(0)
    if task == "srgan":
        scale = config.task.scale
        batch_data = {
            "a": torch.rand(batch, 3, size // scale, size // scale, generator=g).to(dev),
            "b": torch.rand(batch, 3, size, size, generator=g).to(dev),
        }
    else:
        batch_data = {
            "a": (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev),
            "b": (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev),
        }
    if trainer.config.train.channels_last and dev.type == "cuda":
        batch_data = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch_data.items()}

    def step() -> None:
        with trainer.autocast():
            task_obj.train_step(batch_data)
        trainer.scaler.update()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    return {"images_per_s": steps * batch / elapsed, "step_s": elapsed / steps, "peak_gib": peak, "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[trainer.autocast_dtype]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pix2pix")
    parser.add_argument("--size", type=int, default=None, help="image size (HR size for srgan); default 256, srgan 96")
    parser.add_argument("--batch", type=int, default=None, help="batch size; default 1, srgan 16")
    parser.add_argument("--stage", default="gan", choices=["gan", "psnr"], help="srgan: which stage to time")
    parser.add_argument("--vgg-weights", default="", help="srgan: VGG19 weights file (default: torchvision's cache)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the optimized mode")
    parser.add_argument("--modes", default="plain,optimized")
    args = parser.parse_args()
    sr = args.task == "srgan"
    args.size = args.size or (96 if sr else 256)
    args.batch = args.batch or (16 if sr else 1)
    task_options: dict = {}
    note = ""
    scratch = tempfile.TemporaryDirectory()
    if sr:
        from i2i.losses import default_vgg19_weights_path

        task_options["stage"] = args.stage
        if args.stage == "gan":
            weights = Path(args.vgg_weights) if args.vgg_weights else default_vgg19_weights_path()
            if not weights.is_file():
                weights = random_vgg19_weights(Path(scratch.name))
                note = " (VGG19 weights not on disk: random VGG19 of the same shape)"
            task_options["vgg_weights"] = str(weights)

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    what = f"stage {args.stage}, HR {args.size}x{args.size}" if sr else f"{args.size}x{args.size}"
    print(f"# {args.task} training, {what}, batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up{note}")
    print(f"# device: {device} ({name}); torch {torch.__version__}; {datetime.date.today()}")
    print(f"{'mode':<10} {'precision':<15} {'images/s':>9} {'s/step':>8} {'peak GiB':>9}")
    results = {}
    for mode in args.modes.split(","):
        r = bench(
            args.task, mode, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup, device=device,
            compile_=args.compile, task_options=task_options,
        )
        results[mode] = r
        print(f"{mode:<10} {r['precision']:<15} {r['images_per_s']:>9.3f} {r['step_s']:>8.3f} {r['peak_gib']:>9.2f}")
    if "plain" in results and "optimized" in results:
        print(f"optimized / plain: {results['optimized']['images_per_s'] / results['plain']['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
