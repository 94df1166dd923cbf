"""RRDBNet: the ESRGAN generator (Wang et al., 2018), as Real-ESRGAN and BasicSR use it.

Parameter names are those of BasicSR's ``RRDBNet`` (``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so a Real-ESRGAN
``params_ema`` state_dict loads into :class:`RRDBNet` as it is.

The network: conv_first; ``num_block`` residual-in-residual dense blocks and conv_body, with a
skip from conv_first's features around them; ``num_upsample`` stages of nearest x2 upsampling,
conv and LeakyReLU(0.2); conv_hr + LeakyReLU(0.2); conv_last. Each dense block has five 3x3
convs, each seeing the concatenation of the block input and all earlier outputs (``num_grow_ch``
new channels each), and adds ``0.2 *`` its output to its input; each RRDB chains three dense
blocks and adds ``0.2 *`` their output to its input.

Scales. Real-ESRGAN always upsamples x4 in the body and reaches x2 and x1 by pixel-unshuffling
the input by 2 or 4 first (``RealESRGAN_x2plus``: ``conv_first`` takes 12 channels for RGB). The
original ESRGAN code instead used one upsampling stage per factor of 2 (x2: one, x8: three);
``num_upsample`` covers those files. The input is pixel-unshuffled by
``2**num_upsample / scale``, and ``H``, ``W`` must be multiples of that (``size_multiple``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = ["ResidualDenseBlock", "RRDB", "RRDBNet", "unshuffle_factor"]

#: Residual scaling of the dense blocks and of each RRDB (ESRGAN's beta).
RESIDUAL_SCALE = 0.2
NEGATIVE_SLOPE = 0.2


def unshuffle_factor(scale: int, num_upsample: int) -> int:
    """How much the input is pixel-unshuffled so that ``num_upsample`` x2 stages give ``scale``.

    Raises :class:`~i2i.errors.ModelError` when no whole factor does (``scale`` larger than the
    stages can reach, or not a power of two dividing ``2**num_upsample``).
    """
    if scale < 1 or num_upsample < 0 or (2**num_upsample) % scale:
        raise ModelError(
            f"RRDBNet cannot reach scale {scale} with {num_upsample} x2 upsampling stage(s): the stages "
            f"upsample x{2**num_upsample}, and the input is pixel-unshuffled by x{2**num_upsample} / "
            f"scale, which must be a whole number. Use scale 4, 2 or 1 with num_upsample=2 (Real-ESRGAN), "
            "or scale = 2**num_upsample (the original ESRGAN layout)."
        )
    return 2**num_upsample // scale


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs: ``(B, num_feat, H, W)`` -> same.

    ``conv_i`` sees ``cat([x, x1, ..., x_{i-1}])`` and makes ``num_grow_ch`` channels (LeakyReLU
    0.2); ``conv5`` makes ``num_feat`` and the block returns ``x + 0.2 * x5``.
    """

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        for i in range(1, 5):
            self.add_module(f"conv{i}", nn.Conv2d(num_feat + (i - 1) * num_grow_ch, num_grow_ch, 3, padding=1))
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for i in range(1, 5):
            conv = getattr(self, f"conv{i}")
            features.append(F.leaky_relu(conv(torch.cat(features, dim=1)), NEGATIVE_SLOPE))
        return x + RESIDUAL_SCALE * self.conv5(torch.cat(features, dim=1))


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


# Real-ESRGAN's published sizes: RealESRGAN_x4plus (and x2plus, with scale=2), RealESRGAN_x4plus_anime_6B.
@register_model("rrdbnet_x4plus", num_feat=64, num_block=23, num_grow_ch=32)
@register_model("rrdbnet_anime_6b", num_feat=64, num_block=6, num_grow_ch=32)
@register_model("rrdbnet")
class RRDBNet(nn.Module):
    """ESRGAN generator: ``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, scale*H, scale*W)``.

    ``num_feat`` features, ``num_block`` RRDBs, ``num_grow_ch`` channels per dense-block conv
    (Real-ESRGAN: 64, 23, 32). ``scale`` is 4, 2 or 1 with the default ``num_upsample=2``
    (Real-ESRGAN: x2 and x1 pixel-unshuffle the input by 2 and 4 first, so ``H`` and ``W`` must be
    multiples of ``size_multiple`` = 2 and 4: pad, then crop back); with ``num_upsample`` stages
    and no unshuffling, ``scale = 2**num_upsample`` (the original ESRGAN's x2, x8 models).

    The output is not clamped; callers clamp when they convert to images.
    """

    value_range: tuple[float, float] = (0.0, 1.0)

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_upsample: int = 2,
    ) -> None:
        super().__init__()
        for name, value, least in (
            ("in_channels", in_channels, 1), ("out_channels", out_channels, 1), ("num_feat", num_feat, 1),
            ("num_block", num_block, 0), ("num_grow_ch", num_grow_ch, 1),
        ):
            if value < least:
                raise ModelError(f"RRDBNet {name} must be at least {least}, got {value}.")
        self.scale = scale
        self.num_upsample = num_upsample
        self.size_multiple = unshuffle_factor(scale, num_upsample)
        self.conv_first = nn.Conv2d(in_channels * self.size_multiple**2, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        for i in range(1, num_upsample + 1):
            self.add_module(f"conv_up{i}", nn.Conv2d(num_feat, num_feat, 3, padding=1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, scale*H, scale*W)``, unclamped."""
        if self.size_multiple > 1:
            height, width = x.shape[-2:]
            if height % self.size_multiple or width % self.size_multiple:
                raise ModelError(
                    f"RRDBNet x{self.scale} pixel-unshuffles its input by {self.size_multiple}, so height "
                    f"and width must be divisible by {self.size_multiple}, got {height}x{width}. Pad the "
                    "input to a multiple of model.size_multiple and crop the output back."
                )
            x = F.pixel_unshuffle(x, self.size_multiple)
        features = self.conv_first(x)
        h = features + self.conv_body(self.body(features))
        for i in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{i}")
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), NEGATIVE_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(h), NEGATIVE_SLOPE))
