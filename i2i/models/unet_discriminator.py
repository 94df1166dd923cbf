"""Real-ESRGAN's U-Net discriminator with spectral norm (``UNetDiscriminatorSN``).

It judges every pixel rather than every patch: three stride-2 4x4 convs go down to 1/8 of the
input, three bilinear x2 upsamplings with 3x3 convs come back up (each adding the encoder feature
of the same size when ``skip_connection`` is on), two more 3x3 convs refine, and a 3x3 conv gives
one logit per input pixel. All convs but the first and the last are spectrally normalised and
carry no bias; every conv but the last is followed by LeakyReLU(0.2).

Parameter names are Real-ESRGAN's (``conv0`` ... ``conv9``). Spectral norm is PyTorch's
parametrization, which keeps ``convN.parametrizations.weight.original`` and the power-iteration
vectors ``..._u``/``..._v``; :mod:`i2i.foreign` maps the older ``weight_orig``/``weight_u``/
``weight_v`` keys of Real-ESRGAN's files onto them. In ``eval()`` the stored vectors are used as
they are (no power iteration), as in the reference.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from i2i.errors import ModelError
from i2i.registry import register_model

__all__ = ["UNetDiscriminatorSN"]

NEGATIVE_SLOPE = 0.2


@register_model("unet_discriminator", role="discriminator")
class UNetDiscriminatorSN(nn.Module):
    """``(B, in_channels, H, W)`` in [0, 1] -> per-pixel logits ``(B, 1, H, W)``.

    Widths ``num_feat`` (64 in Real-ESRGAN), ``2x``, ``4x``, ``8x`` on the way down and back.
    ``H`` and ``W`` must be multiples of ``size_multiple = 8``. ``spectral_norm=False`` leaves the
    convs plain (same parameter names as a plain conv: ``convN.weight``).
    """

    value_range: tuple[float, float] = (0.0, 1.0)
    size_multiple: int = 8

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_feat: int = 64,
        skip_connection: bool = True,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_feat < 1:
            raise ModelError(
                f"UNetDiscriminatorSN needs in_channels >= 1 and num_feat >= 1, got {in_channels} and {num_feat}."
            )
        norm = _spectral_norm if spectral_norm else (lambda conv: conv)
        f = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, f, 3, padding=1)
        self.conv1 = norm(nn.Conv2d(f, 2 * f, 4, stride=2, padding=1, bias=False))
        self.conv2 = norm(nn.Conv2d(2 * f, 4 * f, 4, stride=2, padding=1, bias=False))
        self.conv3 = norm(nn.Conv2d(4 * f, 8 * f, 4, stride=2, padding=1, bias=False))
        self.conv4 = norm(nn.Conv2d(8 * f, 4 * f, 3, padding=1, bias=False))
        self.conv5 = norm(nn.Conv2d(4 * f, 2 * f, 3, padding=1, bias=False))
        self.conv6 = norm(nn.Conv2d(2 * f, f, 3, padding=1, bias=False))
        self.conv7 = norm(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv8 = norm(nn.Conv2d(f, f, 3, padding=1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` -> raw logits ``(B, 1, H, W)``."""
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ModelError(
                f"UNetDiscriminatorSN needs height and width divisible by {self.size_multiple}, got "
                f"{height}x{width}; crop the training patches to a multiple of {self.size_multiple}."
            )

        def act(h: Tensor) -> Tensor:
            return F.leaky_relu(h, NEGATIVE_SLOPE)

        def up(h: Tensor) -> Tensor:
            return F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        h = act(self.conv3(x2))
        for conv, skip in ((self.conv4, x2), (self.conv5, x1), (self.conv6, x0)):
            h = act(conv(up(h)))
            if self.skip_connection:
                h = h + skip
        h = act(self.conv8(act(self.conv7(h))))
        return self.conv9(h)
