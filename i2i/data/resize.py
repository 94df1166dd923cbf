"""Image resizing for super-resolution: MATLAB's ``imresize`` bicubic and OpenCV's area and cubic.

Published SR tables make their low-resolution inputs with MATLAB's ``imresize(HR, 1/s, 'bicubic')``,
which *antialiases* when it shrinks: the bicubic kernel (a = -0.5) is stretched by ``1/s`` so that
every output pixel averages a ``4/s``-pixel-wide neighbourhood, and the border is mirrored
(symmetric padding). OpenCV's ``INTER_CUBIC`` uses a different kernel (a = -0.75), no antialiasing
and replicated borders, so it gives a different (aliased) low-resolution image; ``INTER_AREA`` is
the box average.

Every method here is separable and linear, so it is expressed as one weight matrix per axis,
``out = W_h @ x @ W_w.T``, built in float64 and applied batched on any device. The matrices are
cached per (length, method, scale).

Methods (:data:`RESIZE_METHODS`):

- ``bicubic``: MATLAB ``imresize(..., 'bicubic')`` with antialiasing (the default; up or down);
- ``area``: OpenCV ``INTER_AREA`` (downscaling only: the pixel-overlap average);
- ``opencv_cubic``: OpenCV ``INTER_CUBIC`` (a = -0.75, no antialiasing, replicated border).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["RESIZE_METHODS", "resize_weights", "imresize", "imresize_array", "degrade"]

RESIZE_METHODS = ("bicubic", "area", "opencv_cubic")


def _cubic(x: Tensor, a: float) -> Tensor:
    """Keys' cubic convolution kernel with parameter ``a`` (MATLAB -0.5, OpenCV -0.75)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = ((a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0) * (ax <= 1.0)
    far = (a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def _matlab_bicubic(in_len: int, out_len: int, scale: float, antialias: bool) -> Tensor:
    kernel_width = 4.0
    stretch = scale if (scale < 1.0 and antialias) else 1.0
    kernel_width /= stretch
    # Output pixel x (1-based) sits at u in input coordinates (1-based, pixel centres on integers).
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    weights = stretch * _cubic(stretch * (u[:, None] - index), -0.5)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric border: ... 2 1 | 1 2 ... n | n n-1 ... (MATLAB's padding), 0-based here.
    m = (index.long() - 1) % (2 * in_len)
    source = torch.where(m < in_len, m, 2 * in_len - 1 - m)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    rows = torch.arange(out_len)[:, None].expand_as(source)
    matrix.index_put_((rows.reshape(-1), source.reshape(-1)), weights.reshape(-1), accumulate=True)
    return matrix


def _opencv_cubic(in_len: int, out_len: int) -> Tensor:
    inv = in_len / out_len
    position = (torch.arange(out_len, dtype=torch.float64) + 0.5) * inv - 0.5
    base = torch.floor(position)
    t = position - base
    offsets = torch.arange(-1, 3, dtype=torch.float64)
    weights = _cubic(t[:, None] - offsets[None, :], -0.75)
    source = (base[:, None] + offsets[None, :]).long().clamp(0, in_len - 1)  # replicated border
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    rows = torch.arange(out_len)[:, None].expand_as(source)
    matrix.index_put_((rows.reshape(-1), source.reshape(-1)), weights.reshape(-1), accumulate=True)
    return matrix


def _area(in_len: int, out_len: int) -> Tensor:
    if out_len > in_len:
        raise ValueError(f"method 'area' only shrinks; asked to resize {in_len} to {out_len} pixels.")
    inv = in_len / out_len
    starts = torch.arange(out_len, dtype=torch.float64) * inv
    ends = starts + inv
    pixels = torch.arange(in_len, dtype=torch.float64)
    overlap = (torch.minimum(ends[:, None], pixels[None, :] + 1) - torch.maximum(starts[:, None], pixels[None, :]))
    return overlap.clamp(min=0.0) / inv


@functools.lru_cache(maxsize=64)
def _cached_weights(in_len: int, out_len: int, method: str, scale: float, antialias: bool) -> Tensor:
    if method == "bicubic":
        return _matlab_bicubic(in_len, out_len, scale, antialias)
    if method == "opencv_cubic":
        return _opencv_cubic(in_len, out_len)
    return _area(in_len, out_len)


def resize_weights(
    in_len: int, out_len: int, method: str = "bicubic", *, scale: float | None = None, antialias: bool = True
) -> Tensor:
    """The ``(out_len, in_len)`` float64 matrix that resizes one axis.

    ``scale`` is the factor MATLAB positions its samples with (``out_len / in_len`` unless given,
    as ``imresize(x, scale)`` does when ``out_len = ceil(in_len * scale)``).
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"Unknown resize method {method!r}; expected one of {', '.join(RESIZE_METHODS)}.")
    if in_len < 1 or out_len < 1:
        raise ValueError(f"Cannot resize {in_len} pixels to {out_len}.")
    scale = float(scale) if scale is not None else out_len / in_len
    return _cached_weights(int(in_len), int(out_len), method, scale, bool(antialias))


def imresize(
    x: Tensor,
    *,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    method: str = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """Resize ``(..., H, W)`` float tensors by ``scale`` or to ``size = (height, width)``.

    With ``scale`` the output is ``ceil(H * scale) x ceil(W * scale)``, as in MATLAB. The result is
    not clamped or rounded (bicubic overshoots); it has ``x``'s dtype and device. Float64 input
    gives MATLAB's double-precision result.
    """
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale or size.")
    if not x.is_floating_point():
        raise TypeError(f"imresize: expected a float tensor, got {x.dtype}; convert with image_to_tensor.")
    height, width = x.shape[-2:]
    if size is None:
        assert scale is not None  # exactly one of the two, checked above
        size = (math.ceil(height * scale - 1e-9), math.ceil(width * scale - 1e-9))
    w_h = resize_weights(height, size[0], method, scale=scale, antialias=antialias).to(x.device, x.dtype)
    w_w = resize_weights(width, size[1], method, scale=scale, antialias=antialias).to(x.device, x.dtype)
    return torch.matmul(torch.matmul(w_h, x), w_w.transpose(0, 1))


def imresize_array(
    image: np.ndarray, *, scale: float | None = None, size: tuple[int, int] | None = None, method: str = "bicubic"
) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` uint8/uint16 image, computed in float64.

    The result is rounded to the nearest level and clipped, like MATLAB's ``imresize`` on integer
    images; it keeps the input's dtype and channel layout.
    """
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"imresize_array: expected uint8 or uint16, got {image.dtype}.")
    squeeze = image.ndim == 2
    planes = torch.from_numpy(np.ascontiguousarray((image[:, :, None] if squeeze else image).transpose(2, 0, 1)))
    out = imresize(planes.to(torch.float64), scale=scale, size=size, method=method)
    top = float(np.iinfo(image.dtype).max)
    out = out.round().clamp(0.0, top).numpy().astype(image.dtype).transpose(1, 2, 0)
    return np.ascontiguousarray(out[:, :, 0] if squeeze else out)


def degrade(hr: Tensor, scale: int, method: str = "bicubic", *, quantize: bool = True) -> Tensor:
    """Low-resolution inputs from ``(B, C, H, W)`` high-resolution images in [0, 1].

    ``H`` and ``W`` must be multiples of ``scale``. The result ``(B, C, H/scale, W/scale)`` is
    clamped to [0, 1] and, with ``quantize``, rounded to 8-bit levels, as an LR image saved as PNG
    would be (so training sees what evaluation feeds the model).
    """
    height, width = hr.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"HR size {width}x{height} is not a multiple of the scale {scale}; crop it first.")
    lr = imresize(hr, scale=1.0 / scale, method=method).clamp(0.0, 1.0)
    if quantize:
        lr = torch.round(lr * 255.0) / 255.0
    return lr
