"""Building blocks shared by two or more models: normalisation and activation factories, and
weight initialisation."""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from i2i.errors import ModelError

__all__ = ["NORMS", "norm_layer", "uses_bias", "activation", "init_weights", "INIT_TYPES"]

NORMS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal", "scaled_kaiming")


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """A factory ``channels -> nn.Module`` for the named 2-D normalisation.

    ``batch`` is BatchNorm with learned affine and running statistics; ``instance`` is
    InstanceNorm without affine parameters or running statistics (the pix2pix/CycleGAN
    convention); ``none`` is the identity.
    """
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"Unknown norm {norm!r}; expected one of {', '.join(NORMS)}.")


def uses_bias(norm: str) -> bool:
    """Whether a convolution followed by ``norm`` carries a bias.

    BatchNorm's affine shift makes a bias redundant. The reference pix2pix code also leaves the
    bias out for ``none``; imported files say which they use, so this is only the default.
    """
    return norm == "instance"


def activation(name: str, *, negative_slope: float = 0.2, num_parameters: int = 1) -> nn.Module:
    """``relu``, ``leaky_relu`` (slope 0.2 by default), ``prelu``, ``tanh`` or ``none``."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "prelu":
        return nn.PReLU(num_parameters)
    if name == "tanh":
        return nn.Tanh()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"Unknown activation {name!r}; expected relu, leaky_relu, prelu, tanh or none.")


@torch.no_grad()
def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise conv and linear weights in place; the tasks build every network through this.

    Conv/linear weights: ``normal`` N(0, gain), ``xavier`` (gain), ``kaiming`` (fan_in),
    ``orthogonal`` (gain), as the pix2pix/CycleGAN papers' code does; their biases 0. BatchNorm:
    weight N(1, gain), bias 0. ``scaled_kaiming`` is the SRResNet / BasicSR MSRResNet rule: conv
    and linear weights kaiming (fan_in) times ``gain`` (0.1 keeps an un-normalised residual stack
    close to the identity at the start), biases 0, BatchNorm weight 1 and bias 0.
    Returns ``module`` for chaining.
    """
    if init_type not in INIT_TYPES:
        raise ModelError(f"Unknown init_type {init_type!r}; expected one of {', '.join(INIT_TYPES)}.")

    def init(m: nn.Module) -> None:
        weight = getattr(m, "weight", None)
        if parametrize.is_parametrized(m, "weight"):
            # Spectral norm: initialise the stored tensor, not the computed view of it.
            weight = getattr(m.parametrizations, "weight").original
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and weight is not None:
            _init_weight(weight, init_type, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and weight is not None:
            if init_type == "scaled_kaiming":
                nn.init.ones_(weight)
            else:
                nn.init.normal_(weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(init)
    return module


def _init_weight(weight: torch.Tensor, init_type: str, gain: float) -> None:
    if init_type == "normal":
        nn.init.normal_(weight, 0.0, gain)
    elif init_type == "xavier":
        nn.init.xavier_normal_(weight, gain=gain)
    elif init_type == "kaiming":
        nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
    elif init_type == "scaled_kaiming":
        nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
        weight.mul_(gain)
    else:
        nn.init.orthogonal_(weight, gain=gain)
