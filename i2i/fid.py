"""FID as papers compute it (Heusel et al. 2017, through pytorch-fid's port of the TensorFlow graph).

The Fréchet distance between Gaussians fitted to 2048-d pool3 features of two image sets. The
features come from the Inception v3 that TensorFlow's FID code uses, in pytorch-fid's PyTorch port:
torchvision's Inception v3 with 1008 classes and its Mixed_5b-5d, 6b-6e, 7b and 7c blocks changed
as that graph computes them (average pooling that leaves the padding out of the count, and a max
pool in the last block), with the weights ``pt_inception-2015-12-05-6726825d.pth``. Images, RGB in
[0, 1], are resized to 299x299 bilinearly (no antialiasing, as pytorch-fid) and scaled to [-1, 1].

Only figures computed this way with these weights compare with published FIDs; the weights are
read from a file (no download), and a missing file raises a :class:`~i2i.errors.ModelError`
naming the URL. The Fréchet distance follows pytorch-fid's ``calculate_frechet_distance``
(scipy's ``sqrtm``, a 1e-6 diagonal offset when the product is singular, the real part).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from i2i.errors import ModelError
from i2i.fetch import torch_hub_checkpoints

__all__ = ["FID_WEIGHTS", "FID_WEIGHTS_URL", "FidInception", "build_fid_inception", "load_fid_inception",
           "fid_features", "frechet_distance"]

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS}"


def _avg_pool_without_padding(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's graph divides by the pixels inside the image only.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _TFInceptionA(InceptionA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_without_padding(x))], 1)


class _TFInceptionC(InceptionC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg_pool_without_padding(x))], 1)


class _TFInceptionE(InceptionE):
    """Mixed_7b pools by average (without the padding), Mixed_7c by maximum: the TF graph's quirk."""

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d3 = torch.cat([self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_without_padding(x)
        return torch.cat([self.branch1x1(x), b3, d3, self.branch_pool(pooled)], 1)


class FidInception(nn.Module):
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 2048)`` pool3 features of the FID Inception."""

    def __init__(self, network: torchvision.models.Inception3) -> None:
        super().__init__()
        n = network
        self.layers = nn.Sequential(
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, nn.MaxPool2d(3, stride=2),
            n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, nn.MaxPool2d(3, stride=2),
            n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
            n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, nn.AdaptiveAvgPool2d(1),
        )
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers(2 * x - 1).flatten(1)


def build_fid_inception() -> torchvision.models.Inception3:
    """torchvision's Inception v3 with 1008 classes and the TF graph's blocks; weights untouched."""
    with torch.device("meta"):  # the weights are loaded next: skip initialising them
        net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = (_TFInceptionA(192, 32), _TFInceptionA(256, 64),
                                                    _TFInceptionA(288, 64))
        net.Mixed_6b, net.Mixed_6c = _TFInceptionC(768, 128), _TFInceptionC(768, 160)
        net.Mixed_6d, net.Mixed_6e = _TFInceptionC(768, 160), _TFInceptionC(768, 192)
        net.Mixed_7b, net.Mixed_7c = _TFInceptionE(1280, max_pool=False), _TFInceptionE(2048, max_pool=True)
    return net.to_empty(device="cpu")


def load_fid_inception(weights: str | os.PathLike | None = None) -> FidInception:
    """The FID Inception from ``weights`` (default: the torch hub cache, where pytorch-fid keeps it)."""
    path = Path(weights) if weights else torch_hub_checkpoints() / FID_WEIGHTS
    if not path.is_file():
        raise ModelError(
            f"The FID Inception weights are not at {str(path)!r}: download {FID_WEIGHTS_URL} "
            f"(pytorch-fid's {FID_WEIGHTS}) and give its path with --fid-weights PATH."
        )
    network = build_fid_inception()
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # unreadable or another network's file
        raise ModelError(
            f"{str(path)!r} is not the FID Inception ({FID_WEIGHTS} from {FID_WEIGHTS_URL}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    return FidInception(network)


@torch.no_grad()
def fid_features(model: FidInception, images: Iterable[np.ndarray], device: torch.device | str = "cpu",
                 batch_size: int = 8) -> np.ndarray:
    """``(N, 2048)`` float64 features of ``(H, W, 3)`` uint8 RGB images (any sizes; batched when equal)."""
    out: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            out.append(model(torch.cat(batch).to(device)).double().cpu().numpy())
            batch.clear()

    for image in images:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        if batch and (tensor.shape != batch[0].shape or len(batch) == batch_size):
            flush()
        batch.append(tensor)
    flush()
    return np.concatenate(out) if out else np.zeros((0, 2048))


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``(N, D)`` and ``(M, D)``."""
    from scipy import linalg

    a64 = np.asarray(a.double().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b64 = np.asarray(b.double().cpu().numpy() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a64, rowvar=False)), np.atleast_2d(np.cov(b64, rowvar=False))
    covmean = linalg.sqrtm(cov_a.dot(cov_b))
    if not np.isfinite(covmean).all():
        # A singular product (fewer images than dimensions): offset the diagonals as pytorch-fid.
        offset = np.eye(cov_a.shape[0]) * eps
        covmean = linalg.sqrtm((cov_a + offset).dot(cov_b + offset))
    diff = mu_a - mu_b
    return float(diff.dot(diff) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean.real))
