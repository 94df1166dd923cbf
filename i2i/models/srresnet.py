"""SRResNet (Ledig et al., 2017), its common variants, and the SRGAN paper's VGG-style discriminator.

One generator class covers three published layouts through keyword arguments:

- **the paper** (the defaults, also leftthomas/SRGAN ``Generator`` with ``output_activation="tanh"``):
  9x9 head conv + PReLU; residual blocks ``conv BN PReLU conv BN (+x)``; conv + BN after the
  blocks with a skip from the head's features; sub-pixel stages ``conv PixelShuffle(2) PReLU``;
  a 9x9 tail conv.
- **BasicSR ``MSRResNet``** (the model-zoo "modified SRResNet"): ``head_kernel=3, tail_kernel=3,
  norm="none", activation="leaky_relu", negative_slope=0.1, block_activation="relu",
  body_conv=False, feature_skip=False, hr_conv=True, image_skip="bilinear"``: no batch norm, the
  residual blocks use ReLU inside, LeakyReLU(0.1) everywhere else, a 3x3 conv + activation at the
  high resolution before the last conv, and the bilinearly upscaled input added to the output.
- anything in between (no-BN blocks with PReLU, say).

Upsampling: x2 and x4 and x8 use one, two and three ``conv(C -> 4C) PixelShuffle(2) act`` stages;
x3 uses one ``conv(C -> 9C) PixelShuffle(3) act`` stage, as both reference codes do.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.layers import activation as make_activation
from i2i.layers import norm_layer, uses_bias
from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = [
    "SCALES",
    "SR_ACTIVATIONS",
    "IMAGE_SKIPS",
    "OUTPUT_ACTIVATIONS",
    "SRResidualBlock",
    "SRResNet",
    "VGGDiscriminator",
]

#: Upscaling factors the sub-pixel stages can express.
SCALES = (2, 3, 4, 8)
SR_ACTIVATIONS = ("prelu", "leaky_relu", "relu")
#: ``bilinear``: add the bilinearly upscaled input to the output (BasicSR MSRResNet).
IMAGE_SKIPS = ("none", "bilinear")
#: ``tanh``: the output is ``(tanh(x) + 1) / 2``, in [0, 1] (leftthomas/SRGAN).
OUTPUT_ACTIVATIONS = ("none", "tanh")


def _stage_factors(scale: int) -> list[int]:
    if scale == 3:
        return [3]
    if scale in (2, 4, 8):
        return [2] * int(math.log2(scale))
    raise ModelError(f"Unsupported SR scale {scale!r}; expected one of {', '.join(map(str, SCALES))}.")


def _act(name: str, negative_slope: float) -> nn.Module:
    if name not in SR_ACTIVATIONS:
        raise ModelError(f"Unknown activation {name!r}; expected one of {', '.join(SR_ACTIVATIONS)}.")
    return make_activation(name, negative_slope=negative_slope)


def _upsampler(channels: int, factors: list[int], *, activation: str, negative_slope: float, bias: bool) -> nn.Sequential:
    """Sub-pixel stages: conv to ``f*f`` times the channels, pixel shuffle by ``f``, activation."""
    return nn.Sequential(
        *(
            nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(channels, channels * f * f, 3, padding=1, bias=bias),
                    shuffle=nn.PixelShuffle(f),
                    act=_act(activation, negative_slope),
                )
            )
            for f in factors
        )
    )


def _check_arguments(
    *, norm: str, num_blocks: int, head_kernel: int, tail_kernel: int, image_skip: str,
    in_channels: int, out_channels: int, output_activation: str,
) -> None:
    """Refuse SRResNet arguments that cannot build, naming the argument and its valid values."""
    if norm not in ("batch", "none"):
        raise ModelError(f"SRResNet norm must be 'batch' or 'none', got {norm!r}.")
    if num_blocks < 0:
        raise ModelError(f"num_blocks must be >= 0, got {num_blocks}.")
    for name, kernel in (("head_kernel", head_kernel), ("tail_kernel", tail_kernel)):
        if kernel < 1 or kernel % 2 == 0:
            raise ModelError(f"{name} must be an odd positive size such as 3 or 9, got {kernel}.")
    if image_skip not in IMAGE_SKIPS:
        raise ModelError(f"Unknown image_skip {image_skip!r}; expected one of {', '.join(IMAGE_SKIPS)}.")
    if image_skip != "none" and in_channels != out_channels:
        raise ModelError(
            f"image_skip={image_skip!r} adds the upscaled input to the output, so in_channels "
            f"({in_channels}) must equal out_channels ({out_channels})."
        )
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ModelError(
            f"Unknown output_activation {output_activation!r}; expected one of {', '.join(OUTPUT_ACTIVATIONS)}."
        )


class SRResidualBlock(nn.Module):
    """``x + norm2(conv2(act(norm1(conv1(x)))))`` with 3x3 convs; ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int, *, norm: str, act: str, negative_slope: float, bias: bool) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.norm1 = make_norm(channels)
        self.act = _act(act, negative_slope)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.norm2 = make_norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


@register_model("srresnet")
class SRResNet(nn.Module):
    """SRResNet generator: ``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, s*H, s*W)``.

    ``scale`` is 2, 3, 4 or 8; the defaults are the paper's. ``norm`` is ``batch`` (the paper) or
    ``none`` (the widely used variant). ``activation`` (``prelu``, ``leaky_relu`` with
    ``negative_slope``, ``relu``) is used after the head, the upsampling stages and ``hr_conv``;
    ``block_activation`` inside the residual blocks (``None``: the same). ``body_conv`` adds conv
    (+ norm) after the blocks; ``feature_skip`` is the global skip from the head's features to the
    end of the body. ``hr_conv`` adds a 3x3 conv + activation after upsampling;
    ``image_skip="bilinear"`` adds the bilinearly upscaled input to the output;
    ``output_activation="tanh"`` maps the output through ``(tanh + 1) / 2``. See the module
    docstring for the BasicSR ``MSRResNet`` and leftthomas/SRGAN settings.

    The output is not clamped (except by ``output_activation="tanh"``); callers clamp when they
    convert to images. Any input size works (``size_multiple = 1``).
    """

    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 1

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_blocks: int = 16,
        norm: str = "batch",
        activation: str = "prelu",
        block_activation: str | None = None,
        negative_slope: float = 0.1,
        head_kernel: int = 9,
        tail_kernel: int = 9,
        body_conv: bool = True,
        feature_skip: bool = True,
        hr_conv: bool = False,
        image_skip: str = "none",
        output_activation: str = "none",
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_arguments(
            norm=norm, num_blocks=num_blocks, head_kernel=head_kernel, tail_kernel=tail_kernel, image_skip=image_skip,
            in_channels=in_channels, out_channels=out_channels, output_activation=output_activation,
        )
        factors = _stage_factors(scale)
        block_activation = block_activation or activation
        self.scale = scale
        self.image_skip = image_skip
        self.output_activation = output_activation
        self.feature_skip = feature_skip
        c = base_channels

        self.head = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_channels, c, head_kernel, padding=head_kernel // 2, bias=bias),
                act=_act(activation, negative_slope),
            )
        )
        self.blocks = nn.Sequential(
            *(
                SRResidualBlock(c, norm=norm, act=block_activation, negative_slope=negative_slope, bias=bias)
                for _ in range(num_blocks)
            )
        )
        self.body_conv = (
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, c, 3, padding=1, bias=bias), norm=norm_layer(norm)(c)))
            if body_conv
            else None
        )
        self.upsample = _upsampler(c, factors, activation=activation, negative_slope=negative_slope, bias=bias)
        self.hr_conv = (
            nn.Sequential(OrderedDict(conv=nn.Conv2d(c, c, 3, padding=1, bias=bias), act=_act(activation, negative_slope)))
            if hr_conv
            else None
        )
        self.tail = nn.Conv2d(c, out_channels, tail_kernel, padding=tail_kernel // 2, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, scale*H, scale*W)``."""
        features = self.head(x)
        h = self.blocks(features)
        if self.body_conv is not None:
            h = self.body_conv(h)
        if self.feature_skip:
            h = h + features
        h = self.upsample(h)
        if self.hr_conv is not None:
            h = self.hr_conv(h)
        out = self.tail(h)
        if self.output_activation == "tanh":
            out = (torch.tanh(out) + 1.0) / 2.0
        if self.image_skip == "bilinear":
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out



@register_model("vgg_discriminator", role="discriminator")
class VGGDiscriminator(nn.Module):
    """The SRGAN paper's discriminator: ``(B, in_channels, S, S)`` -> logits ``(B, 1)``.

    Eight 3x3 convs with LeakyReLU(0.2), widths ``b, b, 2b, 2b, 4b, 4b, 8b, 8b`` and strides
    ``1, 2, 1, 2, ...`` (batch norm after every conv but the first), then a dense layer of ``16b``
    units, LeakyReLU and a dense layer to one logit (the sigmoid belongs to the GAN loss). The dense
    layers fix the input size ``S = input_size`` (96 in the paper; a multiple of 16);
    ``input_size=0`` replaces them with global average pooling and 1x1 convs, for any size.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        norm: str = "batch",
        input_size: int = 96,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        if input_size < 0 or input_size % 16:
            raise ModelError(f"input_size must be a multiple of 16 (or 0 for any size), got {input_size}.")
        b = base_channels
        widths = [b, b, 2 * b, 2 * b, 4 * b, 4 * b, 8 * b, 8 * b]
        bias = uses_bias(norm) or norm == "none"
        blocks = []
        previous = in_channels
        for i, width in enumerate(widths):
            stride = 1 if i % 2 == 0 else 2
            first = i == 0
            blocks.append(
                nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv2d(previous, width, 3, stride=stride, padding=1, bias=True if first else bias),
                        norm=nn.Identity() if first else norm_layer(norm)(width),
                        act=nn.LeakyReLU(negative_slope),
                    )
                )
            )
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.input_size = input_size
        if input_size:
            cells = (input_size // 16) ** 2
            self.head = nn.Sequential(
                OrderedDict(
                    flatten=nn.Flatten(),
                    fc1=nn.Linear(8 * b * cells, 16 * b),
                    act=nn.LeakyReLU(negative_slope),
                    fc2=nn.Linear(16 * b, 1),
                )
            )
        else:
            self.head = nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(1),
                    fc1=nn.Conv2d(8 * b, 16 * b, 1),
                    act=nn.LeakyReLU(negative_slope),
                    fc2=nn.Conv2d(16 * b, 1, 1),
                    flatten=nn.Flatten(),
                )
            )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, S, S)`` -> raw logits ``(B, 1)``."""
        if self.input_size and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ModelError(
                f"This VGG discriminator takes {self.input_size}x{self.input_size} images, got "
                f"{x.shape[-1]}x{x.shape[-2]}. Set data.crop_size to {self.input_size}, or build it "
                "with input_size equal to the HR crop (or 0 for any size)."
            )
        return self.head(self.blocks(x))
