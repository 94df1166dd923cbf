"""BasicSR's ``VGGStyleDiscriminator``: the discriminator of its SRGAN and ESRGAN recipes.

It differs from the SRGAN paper's (``vgg_discriminator`` in :mod:`i2i.models.srresnet`): the
stride-2 convs are 4x4, the widths go ``f, 2f, 4f, 8f, 8f`` over five stages (a sixth for 256 px
inputs), the first dense layer has 100 units, and it takes 128 (or 256) px crops. At
``base_channels=64`` (BasicSR's ``num_feat``) and 128 px it has 14,499,401 parameters. BasicSR leaves it at PyTorch's default initialisation
(the ``srgan`` task's ``discriminator_init_type: default``).

Parameter names are BasicSR's (``conv0_0``, ``conv0_1``, ``bn0_1``, ... ``linear1``, ``linear2``), so
its ``net_d`` state dicts load as they are.
"""
from __future__ import annotations

from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.layers import norm_layer
from i2i.registry import register_model

__all__ = ["VGGStyleDiscriminator", "INPUT_SIZES"]

#: The input sizes BasicSR builds it for: five stride-2 stages for 128 px, six for 256 px, each
#: ending at 4x4 before the dense layers.
INPUT_SIZES = (128, 256)
NEGATIVE_SLOPE = 0.2


@register_model("vgg_style_discriminator", role="discriminator")
class VGGStyleDiscriminator(nn.Module):
    """``(B, in_channels, S, S)`` -> raw logits ``(B, 1)``, ``S = input_size`` (128 or 256).

    Stage ``i`` is a 3x3 conv (stride 1) and a 4x4 conv (stride 2), each followed by ``norm``
    (BatchNorm in BasicSR; not after the very first conv, which has a bias instead) and
    LeakyReLU(0.2); widths ``base_channels * (1, 2, 4, 8, 8, 8)`` (``base_channels`` is BasicSR's
    ``num_feat``). Then dense ``8 * base_channels * 4 * 4 -> 100``, LeakyReLU(0.2), dense ``100 -> 1``.
    With ``norm="none"`` every conv keeps a bias.
    """

    def __init__(self, *, in_channels: int = 3, base_channels: int = 64, norm: str = "batch", input_size: int = 128) -> None:
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise ModelError(
                f"vgg_style_discriminator takes 128 or 256 px inputs (as BasicSR's), got input_size={input_size}; "
                "set data.crop_size to 128 or 256, or use vgg_discriminator (any multiple of 16)."
            )
        if in_channels < 1 or base_channels < 1:
            raise ModelError(f"in_channels and base_channels must be at least 1, got {in_channels} and {base_channels}.")
        make_norm, bias = norm_layer(norm), norm == "none"
        self.input_size = input_size
        self.num_stages = 5 if input_size == 128 else 6
        widths = [base_channels * min(2**i, 8) for i in range(self.num_stages)]
        previous = in_channels
        for i, width in enumerate(widths):
            setattr(self, f"conv{i}_0", nn.Conv2d(previous, width, 3, 1, 1, bias=bias or i == 0))
            if i > 0:
                setattr(self, f"bn{i}_0", make_norm(width))
            setattr(self, f"conv{i}_1", nn.Conv2d(width, width, 4, 2, 1, bias=bias))
            setattr(self, f"bn{i}_1", make_norm(width))
            previous = width
        self.linear1 = nn.Linear(widths[-1] * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, S, S)`` -> raw logits ``(B, 1)``."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ModelError(
                f"This discriminator takes {self.input_size}x{self.input_size} images, got {x.shape[-1]}x{x.shape[-2]}; "
                f"set data.crop_size to {self.input_size}."
            )
        h = x
        for i in range(self.num_stages):
            if i == 0:  # no norm after the very first conv
                h = self.act(getattr(self, "conv0_0")(h))
                h = self.act(getattr(self, "bn0_1")(getattr(self, "conv0_1")(h)))
                continue
            h = self.act(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(h)))
            h = self.act(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(h)))
        h = self.act(self.linear1(h.flatten(1)))
        return self.linear2(h)
