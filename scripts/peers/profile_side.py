"""Where i2i's side of a comparison spends its time: torch.profiler over a few steps (or images),
grouped by operator (self time). The shares between operators change far less with the machine's
load than wall times do, which is why the peer benchmark's misses are explained with this.

    python scripts/peers/profile_side.py pix2pix --steps 2
    python scripts/peers/profile_side.py srresnet --size 96 --batch 16 --weights W.pth
    python scripts/peers/profile_side.py upscale --weights compact_x4.pth --size 128
    python scripts/peers/profile_side.py upscale --weights compact_x4.pth --precision bf16 --no-channels-last

``upscale`` runs fp32 unless ``--precision`` says otherwise (the peer benchmark's headline is fp32;
i2i's own default, ``auto``, is bf16 on a CPU that computes bf16 natively).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sides_common import pix2pix_batch, pix2pix_config, sr_batch  # noqa: E402


def training_step(args: argparse.Namespace):
    import i2i.tasks  # noqa: F401  (the tasks register their config sections)
    from i2i.config import parse_config
    from i2i.trainer import Trainer

    if args.command == "pix2pix":
        config, (a, b) = pix2pix_config(args, {}), pix2pix_batch(args)
    else:
        config = parse_config({
            "task": {"name": "srgan", "stage": "psnr", "init_from": args.weights, "pixel_criterion": "l1", "lr": 2e-4,
                     "beta2": 0.99},
            "data": {"crop_size": args.size, "load_size": args.size, "batch_size": args.batch}, "train": {"device": "cpu"},
        })
        a, b = sr_batch(args)
    trainer = Trainer(config)
    task = trainer.setup_task()
    return lambda: (task.train_step({"a": a, "b": b}), trainer.context.end_iteration())


def upscale_image(args: argparse.Namespace):
    from i2i.inference.translator import Translator

    translator = Translator.from_file(args.weights, device="cpu", precision=args.precision,
                                      channels_last=False if args.no_channels_last else None)
    image = (torch.rand(args.size, args.size, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    return lambda: translator.translate_image(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["pix2pix", "srresnet", "upscale"])
    parser.add_argument("--weights", default="")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--precision", default="fp32", help="upscale: fp32 (default), bf16 or auto")
    parser.add_argument("--no-channels-last", action="store_true", help="upscale: keep weights and input in NCHW")
    args = parser.parse_args()
    step = upscale_image(args) if args.command == "upscale" else training_step(args)
    step()  # warm-up: first calls pick kernels and allocate
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    averages = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in averages)
    # The profiler's self time is wall time inside each operator: on a busy machine it stretches,
    # but the shares between operators are what this is for.
    print(f"# {args.command}: {total / 1e6 / args.steps:.2f} s per step in operators (self time, stretched by load)")
    for event in sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.rows]:
        print(f"{event.key:<48} {event.self_cpu_time_total / total:6.1%}  {event.count // args.steps:>5} calls/step")


if __name__ == "__main__":
    main()
