"""Losses as plain functions: GAN losses, the perceptual (VGG feature) loss and total variation.

The discriminator returns raw logits of any shape (a PatchGAN returns ``(B, 1, h, w)``); the
losses average over every element. All losses are computed in float32 whatever the logits'
dtype, so they are safe under mixed precision (fp16 BCE/MSE underflow and overflow easily).

Modes:

- ``vanilla``: the original GAN, binary cross-entropy on logits (pix2pix default).
- ``lsgan``: least squares, MSE towards 1 (real) and 0 (fake) (CycleGAN default).
- ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))`` for D, ``-D(fake)`` for G.
- ``wgangp``: Wasserstein critic ``D(fake) - D(real)``, ``-D(fake)`` for G; add
  :func:`gradient_penalty` to the critic loss yourself. i2i's tasks (pix2pix, CycleGAN, SRGAN) do:
  in this mode their critic loss includes ``lambda_gp`` (10) times the penalty, so ``wgangp`` is
  WGAN-GP. pytorch-CycleGAN-and-pix2pix accepts ``--gan_mode wgangp`` and defines
  ``cal_gradient_penalty``, but its pix2pix and CycleGAN models never call it: there the mode
  trains an unconstrained critic (no penalty, no weight clipping), which i2i does not reproduce.

The perceptual loss compares feature maps of a frozen network; which network is injected
(:class:`PerceptualLoss` takes any module). The default is torchvision's VGG19 with ImageNet
weights read from a file that must already be on disk: nothing is downloaded.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.errors import ModelError, UsageError
from i2i.fetch import torch_hub_checkpoints

__all__ = [
    "MissingWeightsError",
    "GAN_MODES",
    "check_gan_mode",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "PIXEL_CRITERIA",
    "pixel_loss",
    "VGG19_LAYERS",
    "VGG19_WEIGHTS_FILE",
    "VGG19_WEIGHTS_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "default_vgg19_weights_path",
    "vgg19_features",
    "FeatureTaps",
    "perceptual_loss",
    "PerceptualLoss",
    "total_variation_loss",
]

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")


class MissingWeightsError(ModelError, FileNotFoundError):
    """A feature network's weights file is not on disk (nothing is downloaded); the message says
    which file to put where. Also a ``FileNotFoundError``, as callers of the loss functions expect."""


def check_gan_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`GAN_MODES`, else raise :class:`~i2i.errors.UsageError`
    (a ``ValueError``) listing them."""
    if mode not in GAN_MODES:
        raise UsageError(f"Unknown GAN mode {mode!r}; expected one of {', '.join(GAN_MODES)}.")
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
    penalty: the tasks add :func:`gradient_penalty` themselves (the reference code never does).
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


# ---------------------------------------------------------------------------------------------
# Pixel, perceptual and total-variation losses (super-resolution)

PIXEL_CRITERIA = ("l1", "mse")


def pixel_loss(pred: Tensor, target: Tensor, criterion: str = "l1") -> Tensor:
    """Mean ``l1`` or ``mse`` between same-shape tensors, in float32."""
    if criterion not in PIXEL_CRITERIA:
        raise UsageError(f"Unknown criterion {criterion!r}; expected one of {', '.join(PIXEL_CRITERIA)}.")
    if criterion == "l1":
        return F.l1_loss(pred.float(), target.float())
    return F.mse_loss(pred.float(), target.float())


def _vgg19_layer_names() -> list[str]:
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


#: Index of each named layer in torchvision's ``vgg19().features``. ``relu5_4`` (35) is the SRGAN
#: paper's "VGG54" (phi_5,4, after the activation), for which its 1/12.75 rescaling was
#: calibrated; ``conv5_4`` (34, the convolution's output before its ReLU) is ESRGAN's choice, which
#: BasicSR and Real-ESRGAN follow.
VGG19_LAYERS: dict[str, int] = {name: i for i, name in enumerate(_vgg19_layer_names())}
VGG19_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
VGG19_WEIGHTS_URL = f"https://download.pytorch.org/models/{VGG19_WEIGHTS_FILE}"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_vgg19_weights_path() -> Path:
    """Where torchvision caches its VGG19 ImageNet weights: ``torch.hub.get_dir()/checkpoints/``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (``~/.cache/torch/hub`` by default).
    """
    return torch_hub_checkpoints() / VGG19_WEIGHTS_FILE


def _vgg19_stack(last: int) -> nn.Sequential:
    """torchvision's ``vgg19().features`` layout (same indices, same key names) up to ``last``."""
    layers: list[nn.Module] = []
    channels = 3
    for name in _vgg19_layer_names()[: last + 1]:
        if name.startswith("conv"):
            width = 64 * 2 ** min(int(name[4]) - 1, 3)
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            channels = width
        elif name.startswith("relu"):
            layers.append(nn.ReLU())
        else:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class FeatureTaps(nn.Module):
    """Named intermediate outputs of a sequential stack: ``(B, C, H, W)`` -> ``{name: features}``.

    ``taps`` maps each name to the index of the layer whose output it is (``VGG19_LAYERS``
    indices for a VGG19 stack); the stack runs only as far as the deepest tap. Layers must not
    work in place, or a tapped output would change under the next layer.
    """

    def __init__(self, stack: nn.Sequential, taps: Mapping[str, int]) -> None:
        super().__init__()
        if not taps:
            raise UsageError("FeatureTaps needs at least one tap (a layer name and its index).")
        bad = {name: i for name, i in taps.items() if not 0 <= i < len(stack)}
        if bad:
            raise UsageError(f"Taps {bad} point outside the stack of {len(stack)} layers.")
        self.stack = stack
        self.taps = dict(taps)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        last = max(self.taps.values())
        outputs: dict[int, Tensor] = {}
        for index, layer in enumerate(self.stack):
            x = layer(x)
            outputs[index] = x
            if index == last:
                break
        return {name: outputs[index] for name, index in self.taps.items()}


def _load_vgg19_stack(last: int, weights: str | os.PathLike | None, deepest: str) -> nn.Sequential:
    """``_vgg19_stack(last)`` with torchvision's ImageNet weights from ``weights`` (or the cache)."""
    path = Path(weights) if weights else default_vgg19_weights_path()
    if not path.is_file():
        where = (
            f"{path} (torchvision's cache: torch.hub.get_dir()/checkpoints, i.e. $TORCH_HOME/hub/checkpoints)"
            if not weights
            else str(path)
        )
        raise MissingWeightsError(
            f"The perceptual loss needs torchvision's VGG19 ImageNet weights, {VGG19_WEIGHTS_FILE}, and "
            f"i2i never downloads during training. Download {VGG19_WEIGHTS_URL} and place it at {where}, "
            f"or point task.vgg_weights at your copy (or set task.lambda_perceptual: 0)."
        )
    stack = _vgg19_stack(last)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"{path} is not a readable VGG19 weights file ({type(exc).__name__}: {exc}).") from exc
    wanted = {f"features.{k}": k for k in stack.state_dict()}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ModelError(
            f"{path} does not hold torchvision VGG19 weights up to {deepest}: missing {', '.join(missing[:4])}. "
            f"Expected torchvision's {VGG19_WEIGHTS_FILE}."
        )
    stack.load_state_dict({local: state[key] for key, local in wanted.items()}, strict=True)
    return stack


def vgg19_features(
    layer: str | Sequence[str] = "conv5_4", weights: str | os.PathLike | None = None
) -> nn.Sequential | FeatureTaps:
    """torchvision's VGG19 feature stack, cut after ``layer``, with ImageNet weights; frozen, eval.

    ``layer`` is one name of :data:`VGG19_LAYERS` (the result maps ``(B, 3, H, W)`` to that
    layer's features; the default ``conv5_4`` is ESRGAN's, the SRGAN paper's is ``relu5_4``) or a sequence of names (the result is a :class:`FeatureTaps` giving
    ``{name: features}`` for each, from one pass through the stack cut after the deepest).
    ``weights`` is a torchvision VGG19 state_dict file (``vgg19-dcbb9e9d.pth``); by default the
    copy in torchvision's cache (:func:`default_vgg19_weights_path`). Only the ``features.N``
    tensors up to the deepest layer are read, so a file holding just those works too. Nothing is
    downloaded: a missing file raises :class:`MissingWeightsError` (a ``FileNotFoundError``) saying
    which file to put where; an unreadable or incomplete one :class:`~i2i.errors.ModelError`.
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    unknown = [name for name in names if name not in VGG19_LAYERS]
    if unknown or not names:
        raise UsageError(f"Unknown VGG19 layer {(unknown or [''])[0]!r}; expected one of {', '.join(VGG19_LAYERS)}.")
    deepest = max(names, key=VGG19_LAYERS.__getitem__)
    stack = _load_vgg19_stack(VGG19_LAYERS[deepest], weights, deepest)
    network = stack if isinstance(layer, str) else FeatureTaps(stack, {name: VGG19_LAYERS[name] for name in names})
    network.requires_grad_(False)
    return network.eval()


def _feature_distance(
    pred: Tensor | Mapping[str, Tensor],
    target: Tensor | Mapping[str, Tensor],
    criterion: str,
    layer_weights: Mapping[str, float] | None,
) -> Tensor:
    """The (weighted) distance between one feature tensor or dicts of named ones."""
    if isinstance(pred, Tensor):
        assert isinstance(target, Tensor), "features of one kind: both tensors or both dicts"
        if layer_weights is not None and len(layer_weights) != 1:
            raise UsageError(
                f"The feature network gives one tensor but the loss weighs {len(layer_weights)} layers "
                f"({', '.join(layer_weights)}); give it a network that returns a dict of them (FeatureTaps)."
            )
        weight = next(iter(layer_weights.values())) if layer_weights else 1.0
        return weight * pixel_loss(pred, target, criterion)
    weights = dict(layer_weights) if layer_weights is not None else {name: 1.0 for name in pred}
    missing = [name for name in weights if name not in pred]
    if missing:
        raise UsageError(
            f"The feature network gives layers {', '.join(pred)} but the loss weighs {', '.join(missing)} too."
        )
    assert not isinstance(target, Tensor), "features of one kind: both tensors or both dicts"
    return cast(Tensor, sum(w * pixel_loss(pred[name], target[name], criterion) for name, w in weights.items()))


def perceptual_loss(
    pred: Tensor,
    target: Tensor,
    features: Callable[[Tensor], Tensor | Mapping[str, Tensor]],
    *,
    criterion: str = "l1",
    normalize: bool = True,
    layer_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Distance between ``features(pred)`` and ``features(target)``, a float32 scalar.

    ``pred`` and ``target``: ``(B, C, H, W)`` in [0, 1] (C = 1 is repeated to 3). With
    ``normalize`` both are first standardised with the ImageNet mean and std, as the VGG weights
    expect. ``criterion`` is ``l1`` (BasicSR/ESRGAN) or ``mse`` (the SRGAN paper). The target's
    features are computed without gradients.

    ``features`` returns one tensor, or a dict of named tensors (several layers, as
    :class:`FeatureTaps` does). ``layer_weights`` weighs each name's distance, as BasicSR's
    ``layer_weights`` do (``{"conv1_2": 0.1, ..., "conv5_4": 1}`` in Real-ESRGAN); the result is
    the weighted sum. Without it every layer weighs 1; a single tensor takes the one weight given.
    """
    if pred.shape[1] == 1:
        pred, target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN, device=pred.device, dtype=pred.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=pred.device, dtype=pred.dtype).view(1, 3, 1, 1)
        pred, target = (pred - mean) / std, (target - mean) / std
    with torch.no_grad():
        target_features = features(target.detach())
    return _feature_distance(features(pred), target_features, criterion, layer_weights)


class PerceptualLoss(nn.Module):
    """Perceptual loss with an injected, frozen feature network.

    ``feature_network`` is any module mapping ``(B, 3, H, W)`` to features, one tensor or a dict
    of named ones (tests pass a small random one); ``None`` builds :func:`vgg19_features` from
    ``weights``: at ``layer``, or at every layer of ``layer_weights`` when that is given (a
    mapping of :data:`VGG19_LAYERS` names to weights; the loss is their weighted sum, see
    :func:`perceptual_loss`). Call it as ``loss(pred, target)`` with images in [0, 1]. The network
    stays in eval mode and is not trained; it is not part of the state_dict's learned weights a
    task checkpoints.
    """

    def __init__(
        self,
        feature_network: nn.Module | None = None,
        *,
        layer: str = "conv5_4",
        layer_weights: Mapping[str, float] | None = None,
        weights: str | os.PathLike | None = None,
        criterion: str = "l1",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if criterion not in PIXEL_CRITERIA:
            raise UsageError(f"Unknown criterion {criterion!r}; expected one of {', '.join(PIXEL_CRITERIA)}.")
        if layer_weights is not None and not layer_weights:
            raise UsageError("layer_weights is empty; give at least one layer and its weight, or leave it None.")
        if feature_network is None:
            feature_network = vgg19_features(list(layer_weights) if layer_weights else layer, weights)
        feature_network.requires_grad_(False)
        self.features = feature_network.eval()
        self.criterion = criterion
        self.normalize = normalize
        self.layer_weights = {k: float(v) for k, v in layer_weights.items()} if layer_weights else None

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.features.eval()  # a frozen feature extractor never uses batch statistics
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return perceptual_loss(
            pred, target, self.features, criterion=self.criterion, normalize=self.normalize,
            layer_weights=self.layer_weights,
        )


def total_variation_loss(x: Tensor) -> Tensor:
    """Anisotropic total variation of ``(B, C, H, W)``, a float32 scalar.

    The mean absolute difference between vertically adjacent pixels plus the same horizontally:
    0 for a constant image, 2 for a 0/1 checkerboard.
    """
    x = x.float()
    vertical = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    horizontal = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return vertical + horizontal
