"""Batched augmentation on the training device with kornia.

Paired images get the same random crop, flip and colour jitter; this is done by drawing the
parameters once and applying them to both tensors.
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from i2i.errors import ConfigError

__all__ = ["PairedAugment", "center_crop"]


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop (B, C, H, W) to the central ``size`` x ``size`` (no-op where already smaller)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


class PairedAugment:
    """Random crop, horizontal flip and optional colour jitter of ``a`` and ``b``.

    With ``paired=True`` (pix2pix) both get identical parameters; with ``paired=False``
    (CycleGAN's unpaired domains) each draws its own. Inputs are (B, C, H, W) in
    ``value_range``; ``crop_size=0`` disables cropping. Colour jitter needs 3-channel images.
    """

    def __init__(
        self,
        *,
        crop_size: int = 0,
        flip: bool = True,
        color_jitter: float = 0.0,
        value_range: tuple[float, float] = (-1.0, 1.0),
        paired: bool = True,
    ) -> None:
        self.paired = paired
        self.crop = K.RandomCrop((crop_size, crop_size)) if crop_size else None
        self.flip = K.RandomHorizontalFlip(p=0.5) if flip else None
        j = color_jitter
        self.jitter = K.ColorJiggle(j, j, j, min(j, 0.5) / 5, p=1.0) if j > 0 else None
        self.value_range = value_range
        self.crop_size = crop_size

    @classmethod
    def from_config(cls, data, *, value_range: tuple[float, float], paired: bool) -> "PairedAugment":
        """The augmentation a :class:`~i2i.config.DataConfig` asks for; preprocess modes without
        ``crop`` in their name do not crop."""
        return cls(
            crop_size=data.crop_size if "crop" in data.preprocess else 0,
            flip=data.flip,
            color_jitter=data.color_jitter,
            value_range=value_range,
            paired=paired,
        )

    def center(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The evaluation-time counterpart: the central crop only (nothing random)."""
        if not self.crop_size:
            return a, b
        return center_crop(a, self.crop_size), center_crop(b, self.crop_size)

    def _shared(self, augmentation: K.AugmentationBase2D) -> dict | None:
        # The parameters just drawn for ``a``, or None so that ``b`` draws its own.
        return augmentation._params if self.paired else None

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.crop is not None:
            if min(a.shape[-2:]) < self.crop_size:
                raise ConfigError(
                    f"Images of {a.shape[-1]}x{a.shape[-2]} are smaller than data.crop_size={self.crop_size}; "
                    "lower crop_size or raise load_size."
                )
            a = self.crop(a)
            b = self.crop(b, params=self._shared(self.crop))
        if self.flip is not None:
            a = self.flip(a)
            b = self.flip(b, params=self._shared(self.flip))
        if self.jitter is not None:
            if a.shape[1] != 3 or b.shape[1] != 3:
                raise ConfigError("data.color_jitter needs 3-channel images on both sides; set it to 0.")
            low, high = self.value_range
            a01, b01 = (a - low) / (high - low), (b - low) / (high - low)
            a01 = self.jitter(a01)
            b01 = self.jitter(b01, params=self._shared(self.jitter))
            a, b = a01 * (high - low) + low, b01 * (high - low) + low
        return a, b
