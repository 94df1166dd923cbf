"""SRVGGNetCompact: Real-ESRGAN's small VGG-style upscaler (``realesr-animevideov3``,
``realesr-general-x4v3``).

All work happens at the input resolution: a 3x3 conv to ``num_feat`` channels and an activation,
``num_conv`` more 3x3 convs each followed by an activation, and a last 3x3 conv to
``out_channels * scale**2`` channels that a pixel shuffle turns into the upscaled residual; the
nearest-upsampled input is added to it.

Parameter names are Real-ESRGAN's (``body.0`` the first conv, ``body.1`` its activation, ...,
``body.{2*num_conv + 2}`` the last conv), so its ``params`` state_dict loads as it is. PReLU
activations hold one weight per channel (``body.{odd}.weight``); ReLU and LeakyReLU hold none.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.layers import activation as make_activation
from i2i.registry import register_model

__all__ = ["SRVGG_ACTIVATIONS", "SRVGGNetCompact"]

#: ``prelu`` (one slope per channel, Real-ESRGAN's published models), ``relu``, ``leaky_relu`` (0.1).
SRVGG_ACTIVATIONS = ("prelu", "relu", "leaky_relu")


@register_model("srvgg_compact")
class SRVGGNetCompact(nn.Module):
    """``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, scale*H, scale*W)``, unclamped.

    ``num_feat`` features, ``num_conv`` body convs (``realesr-animevideov3``: 64 and 16,
    ``realesr-general-x4v3``: 64 and 32), any whole ``scale`` (the pixel shuffle's factor).
    ``activation``: ``prelu`` (per channel), ``relu`` or ``leaky_relu`` (slope 0.1), as
    Real-ESRGAN's ``act_type`` ``prelu``/``relu``/``leakyrelu``. The nearest-upsampled input is
    added to the output, so ``in_channels`` must equal ``out_channels``. Any input size works.
    """

    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 1

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        activation: str = "prelu",
    ) -> None:
        super().__init__()
        if activation not in SRVGG_ACTIVATIONS:
            raise ModelError(
                f"Unknown SRVGGNetCompact activation {activation!r}; expected one of {', '.join(SRVGG_ACTIVATIONS)}."
            )
        if scale < 1 or num_conv < 0 or num_feat < 1:
            raise ModelError(
                f"SRVGGNetCompact needs scale >= 1, num_conv >= 0 and num_feat >= 1; got scale={scale}, "
                f"num_conv={num_conv}, num_feat={num_feat}."
            )
        if in_channels != out_channels:
            raise ModelError(
                f"SRVGGNetCompact adds the upsampled input to its output, so in_channels ({in_channels}) "
                f"must equal out_channels ({out_channels})."
            )
        self.scale = scale
        layers: list[nn.Module] = []
        for i in range(num_conv + 1):
            layers.append(nn.Conv2d(in_channels if i == 0 else num_feat, num_feat, 3, padding=1))
            layers.append(make_activation(activation, negative_slope=0.1, num_parameters=num_feat))
        layers.append(nn.Conv2d(num_feat, out_channels * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` in [0, 1] -> ``(B, C, scale*H, scale*W)``, unclamped."""
        out = self.upsampler(self.body(x))
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
