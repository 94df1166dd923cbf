"""The image adapter: what a generator sees and what comes back, in channels, alpha and bit depth.

**Channels.** The image's colour part is converted to the generator's input channels (gray is
repeated to RGB for a 3-channel generator, RGB becomes BT.601 luma for a 1-channel one); the output
has the generator's output channels, so a 1-channel generator gives gray out. With ``keep_gray``
(on for upscalers, as Real-ESRGAN does) a gray input comes back gray: the colour output is turned
into BT.601 luma. A gray + alpha file reads as RGBA with R = G = B (:func:`i2i.data.io.read_image`),
so an RGBA image whose three colour planes are identical counts as gray too and comes back as
gray + alpha in the same form (R = G = B), not tinted by the network's colour output.
Alpha (RGBA, or gray + alpha) is split off and put back: carried through untouched
and, for SR, resized to the output with bilinear interpolation (:func:`~i2i.imageops.merge_alpha`),
or, with the translator's ``alpha="model"``, upscaled by the network itself as a gray image
(Real-ESRGAN's default).

**Levels.** uint8 and uint16 host arrays become float tensors in the generator's value range on the
device, and come back as integers of the same dtype (all 16 bits go through the network as floats).
The conversion back to integers happens on the device, so only a quarter of the bytes travel back.

Nothing here knows about memory, tiles or precision.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from i2i.checkpoint import GeneratorInfo
from i2i.errors import DataError
from i2i.imageops import MAX_VALUE, convert_channels, merge_alpha, split_alpha

__all__ = ["ImageAdapter", "Prepared", "check_image"]


class Prepared(NamedTuple):
    """An input image split for the generator: ``colour`` in its input channels, the ``alpha``
    plane (or None) and whether the image was ``gray``."""

    colour: np.ndarray
    alpha: np.ndarray | None
    gray: bool


def check_image(image: np.ndarray) -> np.ndarray:
    """An image array a caller passed, as ``(H, W, C)`` with C in 1-4; raises DataError when unusable."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image array (H, W, C), got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise DataError(f"expected an image (H, W) or (H, W, C) with C in 1-4, got shape {tuple(image.shape)}")
    if image.dtype not in MAX_VALUE:
        raise DataError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"the image is empty, shape {tuple(image.shape)}")
    return image


def _identical_planes(colour: np.ndarray) -> bool:
    """True when an ``(H, W, 3)`` image is gray stored as colour (R = G = B everywhere)."""
    return colour.shape[2] == 3 and np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(
        colour[:, :, 0], colour[:, :, 2]
    )


@dataclass(frozen=True)
class ImageAdapter:
    """Host images <-> device tensors for one generator.

    Args:
        in_channels, out_channels: the generator's channels (1 or 3).
        value_range: the generator's value range, e.g. ``(-1.0, 1.0)`` or ``(0.0, 1.0)``.
        keep_gray: a gray input gives a gray output (upscalers); otherwise the output has the
            generator's channels (a gray -> colour translator colours it).
    """

    in_channels: int = 3
    out_channels: int = 3
    value_range: tuple[float, float] = (-1.0, 1.0)
    keep_gray: bool = False

    @classmethod
    def for_generator(cls, info: GeneratorInfo) -> "ImageAdapter":
        """The adapter a generator's description asks for."""
        return cls(
            in_channels=int(info.kwargs.get("in_channels", 3)),
            out_channels=int(info.kwargs.get("out_channels", 3)),
            value_range=(float(info.value_range[0]), float(info.value_range[1])),
            keep_gray=int(info.scale) > 1,
        )

    # ------------------------------------------------------------------ channels and alpha

    def prepare(self, image: np.ndarray) -> Prepared:
        """An image -> its colour part in the generator's input channels, its alpha, and whether it
        was gray."""
        colour, alpha = split_alpha(check_image(image))
        gray = colour.shape[2] == 1 or (alpha is not None and _identical_planes(colour))
        return Prepared(np.ascontiguousarray(convert_channels(colour, self.in_channels)), alpha, gray)

    def alpha_as_input(self, alpha: np.ndarray) -> np.ndarray:
        """An alpha plane ``(H, W, 1)`` as an image the generator takes (gray repeated to its channels)."""
        return np.ascontiguousarray(convert_channels(alpha, self.in_channels))

    def finish(self, output: np.ndarray, prepared: Prepared, model_alpha: np.ndarray | None = None) -> np.ndarray:
        """The generator's output in the input's channels, with the alpha put back: ``model_alpha``
        (the alpha plane as the generator upscaled it) when given, else the input's alpha, resized
        bilinearly when the scale changed it."""
        if prepared.gray and self.keep_gray and output.shape[2] != 1:
            output = convert_channels(output, 1)
        alpha = prepared.alpha
        if model_alpha is not None:
            alpha = convert_channels(model_alpha, 1)
        if alpha is None:
            return output
        return merge_alpha(output, alpha, resize=alpha.shape[:2] != output.shape[:2])

    # ------------------------------------------------------------------ levels

    def to_device(self, batch: np.ndarray, device: torch.device) -> torch.Tensor:
        """``(B, H, W, C)`` uint8/uint16 on the host -> ``(B, C, H, W)`` float32 on ``device``."""
        max_value = MAX_VALUE[batch.dtype]
        if not batch.flags.writeable:  # torch.from_numpy wants a writable array
            batch = batch.copy()
        host = torch.from_numpy(batch if batch.dtype == np.uint8 else batch.astype(np.int32))
        x = host.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        low, high = self.value_range
        return x.mul_((high - low) / max_value).add_(low)

    @torch.inference_mode()
    def to_levels(self, y: torch.Tensor, dtype: np.dtype) -> np.ndarray:
        """``(B, C, H, W)`` float in the value range -> ``(B, H, W, C)`` integers of ``dtype`` (host).

        Values are clamped and rounded to the nearest level; NaN becomes black. Works in place on
        ``y`` (a tensor the caller owns) and converts to integers on the device.
        """
        max_value = MAX_VALUE[np.dtype(dtype)]
        low, high = self.value_range
        y = y.float()
        if low:
            y = y.sub_(low)
        y = y.mul_(max_value / (high - low)).nan_to_num_(nan=0.0).clamp_(0, max_value).round_()
        if np.dtype(dtype) == np.uint8:
            return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return y.to(torch.int32).permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.uint16)
