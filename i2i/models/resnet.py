"""The CycleGAN ResNet generator (Johnson et al. style: downsample, residual blocks, upsample).

Same arithmetic as ``ResnetGenerator`` in pytorch-CycleGAN-and-pix2pix. Reflection padding is
expressed through the convolutions' ``padding_mode`` rather than separate padding layers, which
computes exactly the same thing.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import Tensor, nn

from i2i.layers import norm_layer, uses_bias
from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = ["PADDINGS", "ResidualBlock", "ResnetGenerator"]

#: Padding of the residual blocks' 3x3 convolutions (the stem and head always reflect).
PADDINGS = ("reflect", "replicate", "zeros")
PaddingMode = Literal["reflect", "replicate", "zeros"]


class ResidualBlock(nn.Module):
    """``x + norm(conv(dropout(relu(norm(conv(x))))))`` at constant width; ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int, *, norm: str, dropout: bool, bias: bool, padding: PaddingMode) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, bias=bias)
        self.norm1 = make_norm(channels)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding, bias=bias)
        self.norm2 = make_norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(self.act(self.norm1(self.conv1(x))))
        return x + self.norm2(self.conv2(h))


def _conv_norm_relu(conv: nn.Module, channels: int, norm: str) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=conv, norm=norm_layer(norm)(channels), act=nn.ReLU()))


@register_model("resnet_9blocks", num_blocks=9)  # CycleGAN's default generator, for 256x256 images
@register_model("resnet_6blocks", num_blocks=6)  # the CycleGAN paper's choice for 128x128 images
@register_model("resnet")
class ResnetGenerator(nn.Module):
    """ResNet generator: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``, both in ``[-1, 1]``.

    ``H`` and ``W`` must be multiples of ``size_multiple = 4`` (two stride-2 stages).

    Stem: reflect-padded 7x7 conv, norm, ReLU. Two stride-2 3x3 convs (width x2 each) with norm and
    ReLU. ``num_blocks`` residual blocks at ``4 * base_channels``. Two stride-2 3x3 transposed convs
    (output_padding 1) with norm and ReLU. Head: reflect-padded 7x7 conv with bias, Tanh.
    """

    value_range: tuple[float, float] = (-1.0, 1.0)
    size_multiple: int = 4

    def __init__(
        self,
        *,
        num_blocks: int,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        bias: bool | None = None,
        padding: PaddingMode = "reflect",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ModelError(f"Unknown padding {padding!r}; expected one of {', '.join(PADDINGS)}.")
        if num_blocks < 0:
            raise ModelError(f"num_blocks must be >= 0, got {num_blocks}.")
        if bias is None:
            bias = uses_bias(norm)
        ngf = base_channels
        self.stem = _conv_norm_relu(
            nn.Conv2d(in_channels, ngf, 7, padding=3, padding_mode="reflect", bias=bias), ngf, norm
        )
        self.down = nn.Sequential(
            *(
                _conv_norm_relu(
                    nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=bias), ngf * m * 2, norm
                )
                for m in (1, 2)
            )
        )
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(ngf * 4, norm=norm, dropout=dropout, bias=bias, padding=padding)
                for _ in range(num_blocks)
            )
        )
        self.up = nn.Sequential(
            *(
                _conv_norm_relu(
                    nn.ConvTranspose2d(
                        ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=bias
                    ),
                    ngf * m // 2,
                    norm,
                )
                for m in (4, 2)
            )
        )
        self.head = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(ngf, out_channels, 7, padding=3, padding_mode="reflect"),
                tanh=nn.Tanh(),
            )
        )

    @property
    def encoder(self) -> nn.Module:
        """The stem and downsampling path (what fine-tuning with a frozen encoder keeps fixed)."""
        return nn.ModuleList([self.stem, self.down])

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` in ``[-1, 1]`` -> ``(B, out_channels, H, W)`` in ``[-1, 1]``."""
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ModelError(
                f"ResNet generator needs height and width divisible by {self.size_multiple}, got "
                f"{height}x{width}. Pad the input to a multiple of model.size_multiple and crop the "
                f"output back."
            )
        return self.head(self.up(self.blocks(self.down(self.stem(x)))))
