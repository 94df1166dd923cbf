"""What both sides of a comparison share: the configuration of i2i's networks and the fixed
inputs, so the two processes run the same network on the same numbers."""
from __future__ import annotations

import argparse

import torch


def pix2pix_config(args: argparse.Namespace, train: dict):
    """pix2pix's paper recipe (unet_256 + 70x70 PatchGAN, batch norm, vanilla GAN, L1 x 100) at
    ``args.size`` and ``args.batch``; ``train`` picks the mode (``{}``: i2i's defaults)."""
    import i2i.tasks  # noqa: F401  (the tasks register their config sections)
    from i2i.config import parse_config

    return parse_config({
        "task": {"name": "pix2pix"},
        "data": {"crop_size": args.size, "load_size": args.size, "batch_size": args.batch},
        "train": {"device": "cpu", **train},
    })


def pix2pix_batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1
    b = torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1
    return a, b


def sr_batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR): ``args.batch`` HR crops of ``args.size`` in [0, 1] and their x4 smaller inputs."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    lr = torch.rand(args.batch, 3, args.size // 4, args.size // 4, generator=g)
    return lr, hr
