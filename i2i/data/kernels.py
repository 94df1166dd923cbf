"""Blur kernels of Real-ESRGAN's degradation model (Wang et al., ICCVW 2021), drawn on the CPU,
and the batched filters that apply them on the device (per-image kernels, unsharp masking).

Every kernel is a normalised (sums to 1) square ``numpy`` float64 array of odd size, centred on
its middle tap. On the ``size`` x ``size`` grid of offsets ``c = (x, y)`` (``x`` along columns,
``y`` along rows, both in ``[-size//2, size//2]``) with the covariance
``Sigma = R(rotation) diag(sigma_x^2, sigma_y^2) R(rotation)^T`` and ``q = c^T Sigma^-1 c``:

- Gaussian: ``exp(-q / 2)`` (isotropic when ``sigma_x == sigma_y``);
- generalized Gaussian: ``exp(-q**beta / 2)``: ``beta < 1`` gives heavier tails and a sharper peak,
  ``beta > 1`` flattens the top; ``beta = 1`` is the Gaussian;
- plateau: ``1 / (1 + q**beta)``: flat in the middle with a fall-off that steepens as ``beta`` grows;
- sinc (circular low-pass, ``omega_c`` in radians per sample, ``pi`` is Nyquist):
  ``omega_c J1(omega_c r) / (2 pi r)`` with ``r = |c|``, ``omega_c^2 / (4 pi)`` at the centre: the
  truncated impulse response of the ideal disc-shaped low-pass, which makes ringing and overshoot.

The random draws follow Real-ESRGAN's data set: an odd size from 7 to 21, with probability
``sinc_prob`` a sinc (``omega_c`` uniform in ``[pi/3, pi]`` below size 13, else ``[pi/5, pi]``),
otherwise a type from the kernel list with its probability, ``sigma_x`` and ``sigma_y`` uniform in
the same range, the rotation uniform in ``[-pi, pi]`` and ``beta`` half the time below 1 and half
the time above. All draws come from numpy's global generator (the trainer seeds and checkpoints it).

:func:`filter_per_image` and :func:`usm_sharpen` take (B, C, H, W) tensors on any device.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import kornia
import numpy as np
import torch
from torch import Tensor

from i2i.errors import ConfigError

__all__ = [
    "KERNEL_TYPES",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "plateau_kernel",
    "sinc_kernel",
    "pad_kernel",
    "random_kernel_size",
    "random_sinc_cutoff",
    "random_kernel",
    "pulse_kernel",
    "trim_kernels",
    "filter_per_image",
    "usm_sharpen",
]

#: The kernel families a kernel list may name, as Real-ESRGAN's options spell them.
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
#: Real-ESRGAN's mixing weights of :data:`KERNEL_TYPES` (train_realesrgan_x4plus.yml).
DEFAULT_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise ConfigError(f"A blur kernel size must be a positive odd integer, got {size!r}.")


def _quadratic_form(size: int, sigma_x: float, sigma_y: float | None, rotation: float) -> np.ndarray:
    """``c^T Sigma^-1 c`` on the grid: the squared distance in units of the kernel's axes."""
    _check_size(size)
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sigma_y <= 0:
        raise ConfigError(f"Blur sigmas must be positive, got sigma_x={sigma_x}, sigma_y={sigma_y}.")
    offsets = np.arange(size, dtype=np.float64) - size // 2
    x, y = np.meshgrid(offsets, offsets)  # x varies along columns, y along rows
    cos, sin = math.cos(rotation), math.sin(rotation)
    along = cos * x + sin * y  # coordinate along the sigma_x axis (R^T c)
    across = -sin * x + cos * y
    return (along / sigma_x) ** 2 + (across / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0) -> np.ndarray:
    """The (anisotropic, rotated) Gaussian ``exp(-q / 2)``; ``sigma_y=None`` makes it isotropic.

    ``rotation`` (radians) turns the ``sigma_x`` axis from the column axis towards the row axis.
    Returns a ``(size, size)`` float64 array summing to 1.
    """
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, rotation)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """The generalized Gaussian ``exp(-q**beta / 2)``; ``beta=1`` is :func:`gaussian_kernel`."""
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, rotation) ** beta))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """The plateau-shaped ``1 / (1 + q**beta)``: flat top, fall-off steeper as ``beta`` grows."""
    return _normalised(1.0 / (1.0 + _quadratic_form(size, sigma_x, sigma_y, rotation) ** beta))


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """The circular low-pass (2-D "sinc") of cutoff ``omega_c`` radians per sample, truncated to
    ``size`` x ``size`` and normalised; its spectrum is ~1 inside ``|w| < omega_c``, ~0 outside."""
    _check_size(size)
    if not 0 < omega_c <= math.pi:
        raise ConfigError(f"A sinc cutoff must lie in (0, pi], got omega_c={omega_c}.")
    offsets = np.arange(size, dtype=np.float64) - size // 2
    radius = np.hypot(*np.meshgrid(offsets, offsets))
    bessel = torch.special.bessel_j1(torch.from_numpy(omega_c * radius)).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = omega_c * bessel / (2.0 * math.pi * radius)
    kernel[size // 2, size // 2] = omega_c**2 / (4.0 * math.pi)  # the limit at r = 0
    return _normalised(kernel)


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` zero-padded (centred) to ``size`` x ``size``; unchanged when already that large."""
    pad = max(0, (size - kernel.shape[-1]) // 2)
    return np.pad(kernel, pad) if pad else kernel


def random_kernel_size(max_size: int = 21) -> int:
    """An odd size uniform in ``7, 9, ..., max_size`` (Real-ESRGAN's ``2t + 1`` with ``t`` in 3..10)."""
    return int(np.random.choice(np.arange(min(7, max_size), max_size + 1, 2)))


def random_sinc_cutoff(size: int) -> float:
    """``omega_c`` for a sinc of ``size`` taps: uniform in ``[pi/3, pi]`` below 13 taps, else
    ``[pi/5, pi]`` (a short kernel cannot express a low cutoff)."""
    return float(np.random.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi))


def _random_beta(low: float, high: float) -> float:
    # Real-ESRGAN draws beta below and above 1 with equal odds (so with betap_range (1, 2) half of
    # the plateau kernels get beta = 1 exactly); a range that does not straddle 1 is drawn uniformly.
    if low <= 1.0 <= high:
        return float(np.random.uniform(low, 1.0) if np.random.uniform() < 0.5 else np.random.uniform(1.0, high))
    return float(np.random.uniform(low, high))


def random_kernel(
    size: int,
    *,
    kernel_list: Sequence[str] = KERNEL_TYPES,
    kernel_prob: Sequence[float] = DEFAULT_KERNEL_PROB,
    sigma_range: tuple[float, float] = (0.2, 3.0),
    betag_range: tuple[float, float] = (0.5, 4.0),
    betap_range: tuple[float, float] = (1.0, 2.0),
    sinc_prob: float = 0.0,
    rotation_range: tuple[float, float] = (-math.pi, math.pi),
) -> np.ndarray:
    """One ``(size, size)`` kernel drawn as Real-ESRGAN draws its blur kernels.

    With probability ``sinc_prob`` a :func:`sinc_kernel` (cutoff from :func:`random_sinc_cutoff`);
    otherwise a family from ``kernel_list`` (names in :data:`KERNEL_TYPES`) weighted by
    ``kernel_prob``, ``sigma_x`` uniform in ``sigma_range``, and for the ``*aniso`` families
    ``sigma_y`` uniform in the same range and a rotation uniform in ``rotation_range``. Generalized
    Gaussians draw ``beta`` from ``betag_range``, plateaus from ``betap_range``.
    """
    if np.random.uniform() < sinc_prob:
        return sinc_kernel(size, random_sinc_cutoff(size))
    weights = np.asarray(kernel_prob, dtype=np.float64)
    kind = kernel_list[int(np.random.choice(len(kernel_list), p=weights / weights.sum()))]
    sigma_x = float(np.random.uniform(*sigma_range))
    sigma_y, rotation = None, 0.0
    if kind.endswith("aniso"):
        sigma_y = float(np.random.uniform(*sigma_range))
        rotation = float(np.random.uniform(*rotation_range))
    if kind.startswith("generalized"):
        return generalized_gaussian_kernel(size, sigma_x, sigma_y, rotation, _random_beta(*betag_range))
    if kind.startswith("plateau"):
        return plateau_kernel(size, sigma_x, sigma_y, rotation, _random_beta(*betap_range))
    if kind in ("iso", "aniso"):
        return gaussian_kernel(size, sigma_x, sigma_y, rotation)
    raise ConfigError(f"Unknown blur kernel type {kind!r}; use one of {', '.join(KERNEL_TYPES)}.")


def pulse_kernel(size: int) -> np.ndarray:
    """The identity kernel: 1 in the middle of ``size`` x ``size`` zeros."""
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


# ------------------------------------------------------------------ filtering on the device


@functools.lru_cache(maxsize=32)
def _gaussian_matrix(length: int, size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The (length, length) matrix of a 1-D Gaussian blur with the reflect-101 border folded in."""
    offsets = np.arange(size) - size // 2
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    index = np.arange(length)[:, None] + offsets[None, :]
    if length == 1:
        index[:] = 0
    else:  # mirror about the first and last pixel without repeating them, as often as needed
        period = 2 * (length - 1)
        index = index % period
        index = np.where(index < length, index, period - index)
    matrix = np.zeros((length, length))
    np.add.at(matrix, (np.broadcast_to(np.arange(length)[:, None], index.shape), index), np.broadcast_to(taps, index.shape))
    return torch.as_tensor(matrix, dtype=dtype, device=device)


def _gaussian_blur(image: Tensor, size: int, sigma: float) -> Tensor:
    # Separable, as two matrix products: on a CPU 3x faster than a 51-tap convolution
    # (kornia.filters.gaussian_blur2d), and equal to it within 1e-6.
    rows = _gaussian_matrix(image.shape[-2], size, sigma, image.device, image.dtype)
    cols = _gaussian_matrix(image.shape[-1], size, sigma, image.device, image.dtype)
    return torch.matmul(torch.matmul(rows, image), cols.T)


def usm_sharpen(image: Tensor, weight: float = 0.5, radius: int = 50, threshold: int = 10) -> Tensor:
    """Unsharp masking as Real-ESRGAN's USMSharp, batched: (B, C, H, W) in [0, 1] -> same.

    The blur is OpenCV's ``GaussianBlur`` with a ``radius`` (made odd: 50 -> 51) tap kernel and
    OpenCV's sigma for that size (``0.3 ((k - 1) / 2 - 1) + 0.8``, 8.0 for 51 taps), reflect-101
    border. Pixels whose residual ``image - blur`` exceeds ``threshold`` 8-bit levels form a mask,
    blurred the same way into a soft mask that blends ``clip(image + weight * residual)`` over the
    image, so flat areas and noise stay untouched.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    residual = image - _gaussian_blur(image, size, sigma)
    mask = (residual.abs() * 255 > threshold).to(image.dtype)
    soft_mask = _gaussian_blur(mask, size, sigma)
    sharp = (image + weight * residual).clamp(0, 1)
    return soft_mask * sharp + (1 - soft_mask) * image


def trim_kernels(kernels: Tensor) -> Tensor:
    """The smallest centred window of (B, k, k) kernels that holds every non-zero tap."""
    centre = kernels.shape[-1] // 2
    rows, cols = torch.nonzero(kernels.abs().sum(0), as_tuple=True)
    radius = int(max((rows - centre).abs().max(), (cols - centre).abs().max())) if rows.numel() else 0
    return kernels[:, centre - radius : centre + radius + 1, centre - radius : centre + radius + 1]


def filter_per_image(image: Tensor, kernels: Tensor) -> Tensor:
    """Correlate image ``b`` of (B, C, H, W) with kernel ``b`` of (B, k, k) (odd ``k``; all channels).

    ``kornia.filters.filter2d`` with the reflect-101 border (Real-ESRGAN's ``filter2D``); an image
    too small to mirror a kernel's half-width falls back to the replicated border. A batch of
    pulses (all ``k = 1``) is returned as is.
    """
    if kernels.shape[-1] == 1:
        return image * kernels.to(image.device, image.dtype).view(-1, 1, 1, 1)
    border = "reflect" if min(image.shape[-2:]) > kernels.shape[-1] // 2 else "replicate"
    return kornia.filters.filter2d(image, kernels.to(image.device, image.dtype), border_type=border)
