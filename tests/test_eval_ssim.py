"""SSIM through scikit-image equals the published formula (Wang et al.'s reference code, as BasicSR
computes it) on real photos."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i2i.errors import DataError
from i2i.evaluation import rgb_to_y, ssim

skdata = pytest.importorskip("skimage.data")


def reference_ssim(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """The formula written out: 11x11 Gaussian window (sigma 1.5) over the valid region, population
    variances, C1 = (0.01 L)^2, C2 = (0.03 L)^2, float64, the mean over channels."""
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5.0) ** 2) / (2 * 1.5**2))
    window = torch.outer(g / g.sum(), g / g.sum())[None, None]
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2

    def plane(x: np.ndarray, y: np.ndarray) -> float:
        x, y = torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]
        mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
        var_x = F.conv2d(x * x, window) - mu_x**2
        var_y = F.conv2d(y * y, window) - mu_y**2
        cov = F.conv2d(x * y, window) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return float(ssim_map.mean())

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim == 2:
        return plane(a, b)
    return float(np.mean([plane(np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c])) for c in range(a.shape[2])]))


def degraded(image: np.ndarray, seed: int) -> np.ndarray:
    """JPEG-like damage without a codec: noise and a shift of the levels, rounded to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, 12.0, image.shape)
    return np.clip(image.astype(np.float64) * 0.95 + 6 + noise, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_ssim_equals_the_reference_formula_on_photos(name: str) -> None:
    photo = getattr(skdata, name)()[:160, :200]
    other = degraded(photo, seed=len(name))
    rgb = ssim(photo.astype(np.float64), other.astype(np.float64))
    y = ssim(rgb_to_y(photo), rgb_to_y(other))
    assert rgb == pytest.approx(reference_ssim(photo, other), abs=1e-10)
    assert y == pytest.approx(reference_ssim(rgb_to_y(photo), rgb_to_y(other)), abs=1e-10)
    assert 0.1 < y < 0.99  # a real difference, far from both ends


def test_ssim_of_a_gray_photo_and_its_limits() -> None:
    camera = skdata.camera()[100:180, 60:190]
    blurred = (camera[:-1].astype(np.float64) + camera[1:]) / 2
    assert ssim(camera[:-1], blurred) == pytest.approx(reference_ssim(camera[:-1], blurred), abs=1e-10)
    assert ssim(camera, camera) == pytest.approx(1.0)
    with pytest.raises(DataError, match="shapes differ"):
        ssim(camera, camera[:-1])
    with pytest.raises(DataError, match="at least 11x11"):
        ssim(camera[:10], camera[:10])
