"""PatchGAN discriminators: the n-layer (70x70 for ``n_layers=3``) and the 1x1 "pixel" variant.

Same arithmetic as ``NLayerDiscriminator`` and ``PixelDiscriminator`` in
pytorch-CycleGAN-and-pix2pix. Both return raw logits; the GAN loss decides what to do with them.
For pix2pix the input is ``cat([a, b], dim=1)``, so ``in_channels`` is the sum of both.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from i2i.layers import norm_layer, uses_bias
from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = ["PatchDiscriminator", "PixelDiscriminator"]


@register_model("patchgan", role="discriminator")
class PatchDiscriminator(nn.Module):
    """N-layer PatchGAN: ``(B, in_channels, H, W)`` in ``[-1, 1]`` -> logits ``(B, 1, h, w)``.

    ``n_layers`` stride-2 4x4 convs (widths ``base_channels * min(2**i, 8)``; the first without
    norm), one stride-1 4x4 conv with norm, and a stride-1 4x4 conv to one channel; LeakyReLU(0.2)
    between them. Each logit sees a patch of the input: 70x70 for ``n_layers=3``, where a 256x256
    input gives 30x30 logits.

    ``norm=None`` means ``"batch"`` (the pix2pix default), or ``"none"`` when ``spectral_norm`` is
    on; pass a norm explicitly to combine it with spectral norm. ``bias=None`` means the reference
    default for the norm (``i2i.layers.uses_bias``), except that spectrally normalised convs
    without a norm keep their bias.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str | None = None,
        spectral_norm: bool = False,
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        if norm is None:  # the pix2pix default, or none when spectral norm takes its place
            norm = "none" if spectral_norm else "batch"
        if n_layers < 1:
            raise ModelError(f"n_layers must be at least 1, got {n_layers}.")
        if bias is None:
            # Without a norm to absorb it, a spectrally normalised conv keeps its bias.
            bias = True if (spectral_norm and norm == "none") else uses_bias(norm)
        make_norm = norm_layer(norm)

        def width(i: int) -> int:
            return base_channels * min(2**i, 8)

        blocks: list[nn.Module] = [
            nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
                    act=nn.LeakyReLU(0.2),
                )
            )
        ]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            blocks.append(
                nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv2d(width(i - 1), width(i), 4, stride=stride, padding=1, bias=bias),
                        norm=make_norm(width(i)),
                        act=nn.LeakyReLU(0.2),
                    )
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(width(n_layers), 1, 4, stride=1, padding=1)
        if spectral_norm:
            # The task initialises the weights afterwards; the power-iteration vectors follow them
            # with one iteration at every training forward.
            for module in list(self.modules()):
                if isinstance(module, nn.Conv2d):
                    _spectral_norm(module)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` -> raw logits ``(B, 1, h, w)``."""
        return self.head(self.blocks(x))


@register_model("pixel_discriminator", role="discriminator")
class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: ``(B, in_channels, H, W)`` -> per-pixel logits ``(B, 1, H, W)``.

    conv1x1 (bias), LeakyReLU(0.2), conv1x1 to twice the width, norm, LeakyReLU(0.2), conv1x1 to
    one channel. As in the reference code the last two convs carry a bias only when ``bias`` says
    so (no bias with batch norm).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        norm: str = "batch",
        bias: bool | None = None,
    ) -> None:
        super().__init__()
        if bias is None:
            bias = uses_bias(norm)
        self.conv1 = nn.Conv2d(in_channels, base_channels, 1)
        self.conv2 = nn.Conv2d(base_channels, 2 * base_channels, 1, bias=bias)
        self.norm = norm_layer(norm)(2 * base_channels)
        self.head = nn.Conv2d(2 * base_channels, 1, 1, bias=bias)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` -> raw logits ``(B, 1, H, W)``."""
        h = self.act(self.conv1(x))
        h = self.act(self.norm(self.conv2(h)))
        return self.head(h)
