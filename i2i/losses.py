"""GAN losses as plain functions.

The discriminator returns raw logits of any shape (a PatchGAN returns ``(B, 1, h, w)``); the
losses average over every element. All losses are computed in float32 whatever the logits'
dtype, so they are safe under mixed precision (fp16 BCE/MSE underflow and overflow easily).

Modes:

- ``vanilla``: the original GAN, binary cross-entropy on logits (pix2pix default).
- ``lsgan``: least squares, MSE towards 1 (real) and 0 (fake) (CycleGAN default).
- ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for D, ``-D(fake)`` for G.
- ``wgangp``: Wasserstein critic ``D(fake) - D(real)``, ``-D(fake)`` for G; add
  :func:`gradient_penalty` to the critic loss yourself.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GAN_MODES", "check_gan_mode", "discriminator_loss", "generator_loss", "gradient_penalty"]

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")


def check_gan_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`GAN_MODES`, else raise ``ValueError`` listing them."""
    if mode not in GAN_MODES:
        raise ValueError(f"Unknown GAN mode {mode!r}; expected one of {', '.join(GAN_MODES)}.")
    return mode


def _target_loss(logits: Tensor, target: float, mode: str) -> Tensor:
    """Mean BCE-with-logits (vanilla) or MSE (lsgan) between float32 logits and a constant."""
    logits = logits.float()
    targets = torch.full_like(logits, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.mse_loss(logits, targets)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, mode: str) -> Tensor:
    """Discriminator (critic) loss, a float32 scalar.

    ``real_logits``/``fake_logits``: raw discriminator outputs of any shape for real and
    generated samples (detach the fakes from the generator). ``vanilla`` and ``lsgan`` are halved,
    as in pix2pix/CycleGAN, so D learns at half G's rate. ``wgangp`` does not include the gradient
    penalty.
    """
    check_gan_mode(mode)
    if mode in ("vanilla", "lsgan"):
        return 0.5 * (_target_loss(real_logits, 1.0, mode) + _target_loss(fake_logits, 0.0, mode))
    real, fake = real_logits.float(), fake_logits.float()
    if mode == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return fake.mean() - real.mean()


def generator_loss(fake_logits: Tensor, mode: str) -> Tensor:
    """Adversarial loss for the generator, a float32 scalar: make D call the fakes real.

    ``vanilla``: BCE towards 1 (the non-saturating loss); ``lsgan``: MSE towards 1;
    ``hinge`` and ``wgangp``: ``-mean(D(fake))``.
    """
    check_gan_mode(mode)
    if mode in ("vanilla", "lsgan"):
        return _target_loss(fake_logits, 1.0, mode)
    return -fake_logits.float().mean()


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    weight: float = 10.0,
) -> Tensor:
    """WGAN-GP penalty ``weight * mean((||grad_x D(x)||_2 - 1)^2)`` at random interpolates.

    ``real`` and ``fake``: ``(B, ...)`` batches of the same shape; each sample gets its own
    interpolation factor in ``[0, 1)``. Both are detached: the penalty trains the critic only.
    The graph is kept (``create_graph=True``) so the penalty can be backpropagated. Returns a
    float32 scalar.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}."
        )
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interpolates = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    scores = discriminator(interpolates)
    (grad,) = torch.autograd.grad(scores.float().sum(), interpolates, create_graph=True)
    norms = grad.float().flatten(1).norm(2, dim=1)
    return weight * ((norms - 1.0) ** 2).mean()
