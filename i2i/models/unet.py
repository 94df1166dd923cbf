"""The pix2pix U-Net generator, written as a flat encoder/decoder.

The arithmetic is that of ``UnetGenerator`` in pytorch-CycleGAN-and-pix2pix, which nests one
``UnetSkipConnectionBlock`` inside the next; here the same network is two ``ModuleList``s, one
down block and one up block per level, so parameter names stay short
(``down.3.conv.weight``, ``up.3.norm.weight``) and the depth is a plain loop.

Level ``i`` (0 = outermost, ``num_downs - 1`` = innermost) halves the resolution on the way down
and doubles it on the way up. Its width is ``base_channels * min(2**i, 8)``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.layers import norm_layer, uses_bias
from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = ["UNetGenerator"]


def _width(base_channels: int, level: int) -> int:
    return base_channels * min(2**level, 8)


@register_model("unet_256", num_downs=8)  # pix2pix unet_256, its default generator: inputs a multiple of 256
@register_model("unet_128", num_downs=7)  # pix2pix unet_128: inputs a multiple of 128
@register_model("unet")
class UNetGenerator(nn.Module):
    """U-Net generator: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``, both in ``[-1, 1]``.

    ``H`` and ``W`` must be multiples of ``size_multiple = 2**num_downs`` (pad, then crop back).

    Down path: level 0 is a stride-2 4x4 convolution; every deeper level is LeakyReLU(0.2),
    convolution and norm (no norm at the innermost level). Up path, innermost first: ReLU,
    stride-2 4x4 transposed convolution, norm and, for the ``num_downs - 5`` levels just outside the
    innermost one, Dropout(0.5); the outermost level ends in Tanh instead of norm.

    As in the reference code, each skip connection carries the *activated* encoder feature
    ``LeakyReLU(d_i)`` (the reference applies an in-place LeakyReLU to the tensor it then
    concatenates); decoder inputs are ``cat([skip, upsampled], dim=1)``. Every decoder starts with
    ReLU and ``relu(leaky_relu(x)) == relu(x)``, so this changes no output; it is kept literal.
    """

    value_range: tuple[float, float] = (-1.0, 1.0)

    def __init__(
        self,
        *,
        num_downs: int,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ModelError(f"num_downs must be at least 2, got {num_downs}.")
        if bias is None:
            bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        innermost = num_downs - 1
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs

        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for level in range(num_downs):
            width = _width(base_channels, level)
            down_in = in_channels if level == 0 else _width(base_channels, level - 1)
            # The innermost decoder sees only its own encoder output; the others see [skip, up].
            up_in = width if level == innermost else 2 * width
            up_out = out_channels if level == 0 else down_in

            down_layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv=nn.Conv2d(down_in, width, 4, stride=2, padding=1, bias=bias)
            )
            if 0 < level < innermost:
                down_layers["norm"] = make_norm(width)
            down.append(nn.Sequential(down_layers))

            if level == 0:
                # The output convolution always has a bias: no norm follows it.
                up_layers = OrderedDict(
                    conv=nn.ConvTranspose2d(up_in, up_out, 4, stride=2, padding=1, bias=True),
                    tanh=nn.Tanh(),
                )
            else:
                up_layers = OrderedDict(
                    conv=nn.ConvTranspose2d(up_in, up_out, 4, stride=2, padding=1, bias=bias),
                    norm=make_norm(up_out),
                )
                # pix2pix puts dropout in the num_downs - 5 blocks next to the innermost one.
                if dropout and innermost - (num_downs - 5) <= level < innermost:
                    up_layers["dropout"] = nn.Dropout(0.5)
            up.append(nn.Sequential(up_layers))

        self.down = nn.ModuleList(down)
        self.up = nn.ModuleList(up)

    @property
    def encoder(self) -> nn.Module:
        """The downsampling path (what fine-tuning with a frozen encoder keeps fixed)."""
        return self.down

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` in ``[-1, 1]`` -> ``(B, out_channels, H, W)`` in ``[-1, 1]``."""
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ModelError(
                f"U-Net with num_downs={self.num_downs} needs height and width divisible by "
                f"{self.size_multiple}, got {height}x{width}. Pad the input to a multiple of "
                f"model.size_multiple and crop the output back."
            )
        h = self.down[0](x)
        skips: list[Tensor] = []
        for block in self.down[1:]:
            h = F.leaky_relu(h, 0.2)
            skips.append(h)
            h = block(h)
        for level in range(self.num_downs - 1, -1, -1):
            if level < self.num_downs - 1:
                h = torch.cat([skips[level], h], dim=1)
            h = self.up[level](F.relu(h))
        return h
