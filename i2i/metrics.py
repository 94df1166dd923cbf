"""Image quality metrics, computed by kornia on tensors in [0, 1].

These are the training-time validation metrics (RGB, no border crop). The published SR conventions
(Y channel, border crop, uint8 rounding) belong to the SR evaluation.
"""
from __future__ import annotations

from pathlib import Path

import kornia
import torch

from i2i.fetch import torch_hub_checkpoints

__all__ = [
    "l1",
    "psnr",
    "ssim",
    "image_metrics",
    "InceptionFeatures",
    "load_inception",
    "frechet_distance",
]


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


# --- FID ---------------------------------------------------------------------------------------

INCEPTION_WEIGHTS = "inception_v3_google-0cc3c7bd.pth"


class InceptionFeatures(torch.nn.Module):
    """2048-d pool features of torchvision's Inception v3 for (B, 3, H, W) images in [0, 1].

    These are torchvision's ImageNet weights, so FID values are comparable between i2i runs but
    not with published figures, which use the original TensorFlow Inception graph
    (:mod:`i2i.fid`, ``i2i eval --fid``).
    """

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network.eval()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().expand(-1, 3, -1, -1)
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.network((x - self.mean) / self.std)


def inception_weights_path(weights: str | None = None) -> Path:
    """The Inception weights to use: ``weights`` if given, else torchvision's cache."""
    return Path(weights) if weights else torch_hub_checkpoints() / INCEPTION_WEIGHTS


def load_inception(weights: str | None = None) -> InceptionFeatures:
    """Inception v3 feature extractor from a weights file or torchvision's cache (no download).

    Raises FileNotFoundError naming the file to place and where.
    """
    import torchvision

    path = inception_weights_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"Inception v3 weights not found at {str(path)!r}. To compute FID, place torchvision's "
            f"{INCEPTION_WEIGHTS} there, or give its path as task.fid_weights."
        )
    network = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    network.fc = torch.nn.Identity()
    return InceptionFeatures(network)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets (N, D) and (M, D), computed as
    pytorch-fid does (:func:`i2i.fid.frechet_distance`)."""
    from i2i.fid import frechet_distance as fid_frechet_distance

    return fid_frechet_distance(x, y)
