"""Run a generator on one image of any size, channel count and bit depth.

The image is padded (reflection) to the generator's size multiple and cropped back, so the output
is exactly ``scale`` times the input. Gray images into a colour generator are converted; alpha is
kept aside and carried through (resized by :func:`~i2i.data.io.merge_alpha` for SR); 16-bit in gives 16-bit
out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.data.datasets import convert_channels, pad_to_multiple
from i2i.data.io import image_to_tensor, merge_alpha, split_alpha, tensor_to_image

__all__ = ["Translator"]


class Translator:
    """A generator ready for inference on ``device`` (CPU by default)."""

    def __init__(self, model: nn.Module, info: GeneratorInfo, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.info = info
        self.in_channels = int(info.kwargs.get("in_channels", 3))
        self.out_channels = int(info.kwargs.get("out_channels", 3))
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        self.scale = int(info.scale)

    @classmethod
    def from_file(cls, path: str | Path, *, direction: str | None = None, device: str = "cpu") -> "Translator":
        model, info = load_generator(path, direction=direction)
        return cls(model, info, device=device)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in the model's value range -> (B, C_out, scale*H, scale*W)."""
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x.to(self.device), self.size_multiple)
        out = self.model(padded)
        return out[..., : h * self.scale, : w * self.scale]

    def translate_image(self, image: np.ndarray) -> np.ndarray:
        """HxWxC uint8/uint16 RGB(A) or gray -> the translated image, same dtype.

        A 1-channel output stays gray; alpha is carried through.
        """
        color, alpha = split_alpha(image)
        source_gray = color.shape[2] == 1
        x = image_to_tensor(convert_channels(color, self.in_channels), self.info.value_range)[None]
        y = self.translate_tensor(x)[0].float().cpu()
        out = tensor_to_image(y, self.info.value_range, dtype=image.dtype)
        if self.out_channels == 3 and source_gray and self.in_channels == 3 and self.info.task == "srgan":
            # An SR model upscales gray input as colour; give gray back.
            out = convert_channels(out, 1)
        if alpha is not None:
            out = merge_alpha(out, alpha, resize=self.scale != 1)
        return out
