"""NIQE, the no-reference image quality score of Mittal, Soundararajan and Bovik (2013), as SR papers compute it.

"Making a Completely Blind Image Quality Analyzer" (IEEE Signal Processing Letters 20(3), 2013)
measures how far an image's local statistics lie from those of pristine natural photos: lower is
more natural. SR papers (ESRGAN, Real-ESRGAN, the PIRM challenge) report it with the authors'
MATLAB release (``computequality.m``) or BasicSR's port of it, which this module follows step by step:

1. the plane: the **Y channel** of BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` defines it
   (``16 + (65.481 R + 128.553 G + 24.966 B) / 255``), or gray (``0.299 R + 0.587 G + 0.114 B``),
   **rounded** to integer levels in [0, 255]; a gray input is used as it is;
2. an optional **border crop**, then the plane is cut to whole **96x96 blocks** (bottom and right);
3. **MSCN coefficients** ``(I - mu) / (sigma + 1)``, with ``mu`` and ``sigma`` the local mean and
   standard deviation under a 7x7 Gaussian window (sigma 7/6, MATLAB ``fspecial``), borders
   replicated (``imfilter(..., 'replicate')``);
4. per block, 18 features: an **AGGD fit** (shape and mean scale) of the coefficients, and for
   the products with the four neighbours (right, down, and the two diagonals, circularly shifted
   within the block as ``circshift``) shape, mean, left and right scale. The AGGD shape is found
   on the reference's grid 0.2:0.001:10 by moment matching;
5. a **second scale**: the cropped plane shrunk by 0.5 with MATLAB's antialiased bicubic
   ``imresize`` (:func:`i2i.data.resize.imresize`), then steps 3-4 on 48x48 blocks (the same
   areas), giving 36 features per block;
6. a Gaussian fitted to the blocks' features (mean ignoring NaN, covariance of the rows without
   NaN) is compared with the **pristine model**:
   ``sqrt((mu_p - mu) pinv((cov_p + cov) / 2) (mu_p - mu)^T)``.

The blocks do not overlap, and no block is left out: the sharpness threshold of the release
(0.75) is used only when the pristine model is fitted, not when an image is scored. The MATLAB
release scores colour images in gray (``rgb2gray``); BasicSR, and the SR papers that use it,
score the Y channel, which is the default here (``y_channel=False`` for gray).

The pristine model (``i2i/assets/niqe_pristine.npz``: ``mu`` (36,) and ``cov`` (36, 36), float64)
holds the numbers of ``modelparameters.mat`` of the NIQE MATLAB release
(http://live.ece.utexas.edu/research/quality/niqe_release.zip; Copyright (c) 2011 The University
of Texas at Austin, LIVE and CPS; free to use, copy, modify and distribute with the copyright
notice kept and the source acknowledged, and the papers cited in research that uses it), taken
unchanged from the copy BasicSR (Apache-2.0) ships as ``niqe_pris_params.npz``. The file also
carries its ``origin`` and the release's full copyright ``notice`` as text entries.

Filters and fits run in float64; the MSCN coefficients and the half-size plane are rounded to
float32 as the reference computes them (so flat areas stay exactly flat). Scores agree with
BasicSR 1.4.2's ``calculate_niqe`` to 1e-5 on photos without flat areas and within 6e-4 on all
photos tested (``tests/test_niqe.py``): in flat areas the reference's float32 shrink leaves
rounding noise that it then measures. An image needs at least two 96x96 blocks after the crop.
"""
from __future__ import annotations

import functools
import math
from importlib import resources

import cv2
import numpy as np
import torch
from torch import Tensor

from i2i.data.resize import imresize
from i2i.errors import DataError

__all__ = ["niqe", "niqe_batch"]

BLOCK = 96
#: The AGGD shape grid of the reference (MATLAB ``0.2:0.001:10``).
_SHAPES = np.arange(0.2, 10.001, 0.001)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_CHUNK = 256  # blocks per grid search, to bound memory on 4K images


@functools.lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray]:
    """``(mu (36,), cov (36, 36))`` of the pristine model shipped in ``i2i/assets``."""
    path = resources.files("i2i.assets") / "niqe_pristine.npz"
    with resources.as_file(path) as file, np.load(file, allow_pickle=False) as data:
        return data["mu"].astype(np.float64), data["cov"].astype(np.float64)


@functools.lru_cache(maxsize=1)
def _gamma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every grid shape a: r(a) = G(2/a)^2 / (G(1/a) G(3/a)), sqrt(G(1/a)/G(3/a)), G(2/a)/G(1/a)."""
    g = np.frompyfunc(math.gamma, 1, 1)
    g1, g2, g3 = (np.asarray(g(k / _SHAPES), dtype=np.float64) for k in (1.0, 2.0, 3.0))
    return g2**2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', 7, 7/6)`` (the 2-D window is its outer product)."""
    x = np.arange(7, dtype=np.float64) - 3.0
    g = np.exp(-(x**2) / (2.0 * (7.0 / 6.0) ** 2))
    return g / g.sum()


def _blur(plane: np.ndarray) -> np.ndarray:
    """The 7x7 Gaussian filter of ``plane`` with replicated borders (separable, float64)."""
    g = _window()
    padded = np.pad(plane, 3, mode="edge")
    h, w = plane.shape
    rows = sum(g[k] * padded[k : k + h, :] for k in range(7))
    return sum(g[k] * rows[:, k : k + w] for k in range(7))


def _mscn(plane: np.ndarray) -> np.ndarray:
    """Mean-subtracted, contrast-normalised coefficients ``(I - mu) / (sigma + 1)``.

    The filters run in float64 and their results are rounded to float32, as the reference
    computes them: an exactly flat area then gives exactly 0 (neither a negative nor a positive
    sample for the AGGD fits) instead of float64's +-1e-14 rounding noise, whose signs would.
    """
    p32 = plane.astype(np.float32)
    mu = _blur(p32.astype(np.float64)).astype(np.float32)
    mean_square = _blur((p32 * p32).astype(np.float64)).astype(np.float32)
    sigma = np.sqrt(np.abs(mean_square - mu * mu))
    return ((p32 - mu) / (sigma + np.float32(1.0))).astype(np.float64)


def _aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of ``samples`` (N, M): (shape index on the grid, left scale, right scale).

    A row with no negative or no positive sample gives NaN scales (and the first grid shape), as
    the reference does; those NaNs are dropped when the model is fitted.
    """
    r_table, scale_table, _ = _gamma_tables()
    negative, positive = samples < 0, samples > 0
    squares = samples * samples
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt((squares * negative).sum(1) / negative.sum(1))
        right = np.sqrt((squares * positive).sum(1) / positive.sum(1))
        ratio = left / right
        rhat = np.abs(samples).mean(1) ** 2 / squares.mean(1)
        rhat_norm = rhat * (ratio**3 + 1.0) * (ratio + 1.0) / (ratio**2 + 1.0) ** 2
    index = np.concatenate([
        np.argmin((r_table[None, :] - rhat_norm[i : i + _CHUNK, None]) ** 2, axis=1)
        for i in range(0, len(rhat_norm), _CHUNK)
    ])
    return index, left * scale_table[index], right * scale_table[index]


def _block_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """The 18 features of every ``size`` x ``size`` block of an MSCN plane: ``(blocks, 18)``."""
    h, w = mscn.shape
    blocks = mscn.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    _, _, mean_table = _gamma_tables()
    index, left, right = _aggd(blocks.reshape(len(blocks), -1))
    features = [_SHAPES[index], (left + right) / 2.0]
    for shift in _SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        index, left, right = _aggd(products.reshape(len(blocks), -1))
        features += [_SHAPES[index], (right - left) * mean_table[index], left, right]
    return np.stack(features, axis=1)


def _plane(image: np.ndarray, y_channel: bool) -> np.ndarray:
    """The rounded float64 luma (Y or gray) of a uint8 ``(H, W)``/``(H, W, 1|3|4)`` image."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"niqe: expected a uint8 numpy image (H, W) or (H, W, C), got {kind}.")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"niqe: expected a gray, RGB or RGBA image, got shape {tuple(image.shape)}.")
    rgb = image[:, :, :3].astype(np.float64)
    if y_channel:
        plane = 16.0 + rgb @ np.array([65.481, 128.553, 24.966]) / 255.0
    else:
        # OpenCV's float32 conversion, as the reference: its rounding decides the many exact
        # ties (0.299 R + 0.587 G + 0.114 B = k + 0.5) the same way.
        bgr = np.ascontiguousarray(image[:, :, 2::-1]).astype(np.float32) / np.float32(255.0)
        plane = (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) * np.float32(255.0)).astype(np.float64)
    return np.round(plane)


def niqe(image: np.ndarray, *, crop_border: int = 0, y_channel: bool = True) -> float:
    """NIQE of one image: lower is more natural (pristine photos score about 2-5).

    Args:
        image: ``(H, W, 3)`` uint8 RGB (RGBA: alpha ignored), or ``(H, W)``/``(H, W, 1)`` uint8 gray.
        crop_border: pixels cut from every side before measuring (SR papers crop the scale).
        y_channel: measure the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``), as BasicSR and
            SR papers do; False measures gray (``0.299 R + 0.587 G + 0.114 B``). A gray image is
            measured as it is.

    Returns:
        The score; NaN when fewer than two blocks have any texture (a flat image), whose
        statistics cannot be fitted.

    Raises:
        DataError: not a uint8 image, or smaller than two 96x96 blocks after the crop.
    """
    if crop_border < 0:
        raise DataError(f"niqe: crop_border must be 0 or more, got {crop_border}.")
    plane = _plane(image, y_channel)
    if crop_border:
        plane = plane[crop_border:-crop_border, crop_border:-crop_border]
    rows, cols = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    if rows * cols < 2:
        raise DataError(
            f"niqe needs at least two {BLOCK}x{BLOCK} blocks, e.g. {2 * BLOCK}x{BLOCK} pixels after a border "
            f"crop of {crop_border}; the image gives {plane.shape[1]}x{plane.shape[0]}."
        )
    plane = plane[: rows * BLOCK, : cols * BLOCK]
    # The half-size plane is kept in float32, as the reference's; flat areas stay exactly flat.
    half = imresize(torch.from_numpy(plane)[None], scale=0.5, method="bicubic")[0].numpy().astype(np.float32)
    features = np.concatenate([_block_features(_mscn(plane), BLOCK), _block_features(_mscn(half), BLOCK // 2)], 1)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:  # flat blocks have no AGGD fit: nothing to compare
        return math.nan
    mu_pristine, cov_pristine = _pristine()
    mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False)
    distance = mu_pristine - mu
    quality = distance @ np.linalg.pinv((cov_pristine + cov) / 2.0) @ distance
    return float(np.sqrt(quality))


def niqe_batch(images: Tensor, *, crop_border: int = 0, y_channel: bool = True) -> Tensor:
    """NIQE of each image of a ``(B, C, H, W)`` batch in [0, 1] (C = 1 or 3): a float64 ``(B,)``.

    Each image is clamped, rounded to 8 bits (as a saved output would be) and scored with
    :func:`niqe` on the CPU; the scores are returned on ``images``' device. No gradient flows.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"niqe_batch: expected (B, 1|3, H, W) images in [0, 1], got shape {tuple(images.shape)}.")
    levels = (images.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu()
    scores = [niqe(x.permute(1, 2, 0).numpy(), crop_border=crop_border, y_channel=y_channel) for x in levels]
    return torch.tensor(scores, dtype=torch.float64, device=images.device)
