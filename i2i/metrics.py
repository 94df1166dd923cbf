"""Image quality metrics, computed by kornia on tensors in [0, 1].

These are the training-time validation metrics (RGB, no border crop). The published SR conventions
(Y channel, border crop, uint8 rounding) belong to the SR evaluation.
"""
from __future__ import annotations

import kornia
import torch

__all__ = ["to_unit_range", "l1", "psnr", "ssim", "image_metrics"]


def to_unit_range(x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map a tensor from ``value_range`` to [0, 1] and clamp."""
    low, high = value_range
    return ((x.float() - low) / (high - low)).clamp(0.0, 1.0)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of (B, C, H, W) tensors in [0, 1]."""
    return (pred - target).abs().mean()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-image PSNR in dB, (B, C, H, W) in [0, 1]."""
    values = [kornia.metrics.psnr(p, t, 1.0) for p, t in zip(pred, target)]
    return torch.stack(values).mean()


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean SSIM with a Gaussian window, (B, C, H, W) in [0, 1]."""
    window_size = min(window_size, pred.shape[-1], pred.shape[-2])
    window_size -= 1 - window_size % 2  # kornia needs an odd window
    return kornia.metrics.ssim(pred, target, window_size).mean()


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """L1, PSNR and SSIM of (B, C, H, W) tensors in [0, 1], as floats."""
    pred, target = pred.float(), target.float()
    return {
        "l1": float(l1(pred, target)),
        "psnr": float(psnr(pred, target)),
        "ssim": float(ssim(pred, target)),
    }
