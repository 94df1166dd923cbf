"""SRGAN (Ledig et al., 2017): single-image super-resolution in two stages, as practised.

1. ``stage: psnr`` trains the generator alone on a pixel loss (``pixel_criterion``: ``mse`` as in
   the paper's SRResNet, or ``l1`` as BasicSR's MSRResNet). This is the PSNR-oriented model.
2. ``stage: gan`` starts from the stage-1 generator (``init_from``) and adds a discriminator:
   ``lambda_pixel * pixel + lambda_perceptual * VGG + lambda_adv * GAN (+ lambda_tv * TV)``.
   The loss defaults are the paper's SRGAN-VGG54: no pixel term, the MSE of VGG19 ``relu5_4``
   features (the paper's phi_5,4, after the activation) with its 1/12.75 feature rescaling (a
   weight of 1/12.75^2 = 0.00615), and 1e-3 for the adversarial term. ``perceptual_layer:
   conv5_4`` (before the ReLU) is ESRGAN's choice, which BasicSR's recipes follow;
   ``configs/srgan_x4_basicsr.yaml`` holds BasicSR's recipe (L1 1e-2, perceptual L1 1.0 on
   conv5_4, GAN 5e-3, its ``vgg_style_discriminator``).

Images are in [0, 1] (``value_range``). A batch's ``"a"`` is the LR input and ``"b"`` the HR
target; with an HR-only folder the LR is made from each HR crop on the device
(:class:`i2i.data.sr.SRAugment`). The default discriminator is the shared PatchGAN (it takes any
crop size); the paper's VGG-style one is ``{name: vgg_discriminator, input_size: 96}``
(``configs/srgan_x4.yaml``), BasicSR's ``{name: vgg_style_discriminator, input_size: 128}``.

Update order (``update_order``): ``d_then_g`` updates the discriminator first, then the
generator against the updated discriminator: the alternation of Goodfellow et al. with k = 1
that the SRGAN paper follows, and pix2pix's order. ``g_then_d`` is BasicSR's ``SRGANModel``: the
generator steps against the discriminator as it was, then the discriminator learns from the
same (pre-update) output, detached.

Fresh networks start as the SR literature starts them (config defaults, applied by the one
initialiser every task uses): the generator with SRResNet's scaled kaiming rule, the discriminator
with N(0, 0.02) like the pix2pix family's, except BasicSR's ``vgg_style_discriminator``, which
BasicSR leaves at PyTorch's own initialisation (``discriminator_init_type: default``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.config import TaskConfig, check_choice, register_task
from i2i.data.resize import RESIZE_METHODS
from i2i.data.sr import SRAugment, SRDataset
from i2i.errors import ConfigError
from i2i.layers import INIT_TYPES
from i2i.losses import (
    GAN_MODES,
    PIXEL_CRITERIA,
    VGG19_LAYERS,
    PerceptualLoss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    pixel_loss,
    total_variation_loss,
)
from i2i.models import create_model, model_signature
from i2i.registry import model_spec
from i2i.tasks.base import SuperResolutionTask, build_network, check_network_section, network_arguments, set_requires_grad

__all__ = ["SRGAN", "SRGANConfig", "STAGES", "UPDATE_ORDERS"]

STAGES = ("psnr", "gan")
#: ``d_then_g``: the paper (Goodfellow et al.'s alternation, k = 1); ``g_then_d``: BasicSR's SRGANModel.
UPDATE_ORDERS = ("d_then_g", "g_then_d")
#: ``discriminator_init_type`` that leaves a fresh discriminator at PyTorch's own initialisation.
PYTORCH_DEFAULT_INIT = "default"
#: Discriminators whose reference code never re-initialises them (BasicSR's).
DEFAULT_INIT_DISCRIMINATORS = ("vgg_style_discriminator",)
DEFAULT_GENERATOR = {"name": "srresnet", "base_channels": 64, "num_blocks": 16, "norm": "batch", "activation": "prelu"}
DEFAULT_DISCRIMINATOR = {"name": "patchgan", "base_channels": 64, "n_layers": 3, "norm": "batch"}


@dataclass(frozen=True)
class SRGANConfig(TaskConfig):
    """SRGAN hyperparameters; the defaults are the paper's (SRResNet-MSE, then SRGAN-VGG54).

    ``scale`` is the upscaling factor (2, 3, 4 or 8). ``generator``/``discriminator`` name a
    registered model and its keyword arguments, merged over the defaults when the name is
    unchanged; the generator gets ``scale`` and ``in_channels``/``out_channels`` from here.
    ``init_from`` starts the generator from a trained file (an i2i generator, a BasicSR MSRResNet
    or a leftthomas/SRGAN file); its architecture then comes from the file.

    ``lambda_pixel`` weighs the pixel loss in the ``gan`` stage; the ``psnr`` stage optimises the
    pixel loss alone (plus ``lambda_tv``). ``perceptual_layer`` names a VGG19 layer:
    ``relu5_4`` (the SRGAN paper's VGG54) or ``conv5_4`` (ESRGAN's, before the ReLU), or any other
    of :data:`i2i.losses.VGG19_LAYERS`. ``gan_mode: wgangp`` adds
    :func:`i2i.losses.gradient_penalty` (``lambda_gp``) to the critic loss. ``update_order`` is
    ``d_then_g`` (the paper) or ``g_then_d`` (BasicSR). An empty ``discriminator_init_type`` means
    ``default`` (PyTorch's own initialisation) for BasicSR's ``vgg_style_discriminator`` and
    ``normal`` otherwise. ``vgg_weights`` is torchvision's ``vgg19-dcbb9e9d.pth`` (empty:
    torchvision's cache). ``degradation`` makes LR inputs from HR images: ``bicubic`` (MATLAB,
    antialiased), ``area`` or ``opencv_cubic``; ``quantize_lr`` rounds them to 8-bit levels like
    saved images. ``rotate`` adds random 90-degree rotations to the flips (``data.flip``).
    """

    name: str = "srgan"
    stage: str = "gan"
    scale: int = 4
    generator: dict = field(default_factory=lambda: dict(DEFAULT_GENERATOR))
    discriminator: dict = field(default_factory=lambda: dict(DEFAULT_DISCRIMINATOR))
    in_channels: int = 3
    init_from: str = ""
    pixel_criterion: str = "mse"
    lambda_pixel: float = 0.0
    perceptual_layer: str = "relu5_4"
    perceptual_criterion: str = "mse"
    lambda_perceptual: float = 0.00615
    vgg_weights: str = ""
    gan_mode: str = "vanilla"
    lambda_adv: float = 0.001
    lambda_gp: float = 10.0
    lambda_tv: float = 0.0
    update_order: str = "d_then_g"
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    degradation: str = "bicubic"
    quantize_lr: bool = True
    rotate: bool = True
    generator_init_type: str = "scaled_kaiming"
    generator_init_gain: Optional[float] = None
    discriminator_init_type: Optional[str] = None
    discriminator_init_gain: float = 0.02

    def validate(self) -> None:
        check_choice("task.stage", self.stage, STAGES)
        check_choice("task.pixel_criterion", self.pixel_criterion, PIXEL_CRITERIA)
        check_choice("task.perceptual_criterion", self.perceptual_criterion, PIXEL_CRITERIA)
        check_choice("task.perceptual_layer", self.perceptual_layer, list(VGG19_LAYERS))
        check_choice("task.degradation", self.degradation, RESIZE_METHODS)
        check_choice("task.gan_mode", self.gan_mode, GAN_MODES)
        check_choice("task.generator_init_type", self.generator_init_type, INIT_TYPES)
        check_choice("task.update_order", self.update_order, UPDATE_ORDERS)
        if self.discriminator_init_type is not None:
            check_choice("task.discriminator_init_type", self.discriminator_init_type, INIT_TYPES + (PYTORCH_DEFAULT_INIT,))
        check_network_section(
            "task.generator", self.generator, DEFAULT_GENERATOR,
            fixed={"scale": "task.scale", "in_channels": "task.in_channels", "out_channels": "task.in_channels"},
        )
        check_network_section(
            "task.discriminator", self.discriminator, DEFAULT_DISCRIMINATOR, fixed={"in_channels": "task.in_channels"}
        )

    def generator_gain(self) -> float:
        """``generator_init_gain``, or the rule of SRResNet and BasicSR when it is empty: 0.1 for a
        network without batch norm (MSRResNet, RRDBNet, the compact model), 1 with it."""
        if self.generator_init_gain is not None:
            return self.generator_init_gain
        name, kwargs = network_arguments(self.generator, DEFAULT_GENERATOR)
        norm = kwargs.get("norm", model_signature(name).get("norm", "none"))
        return 0.1 if norm == "none" else 1.0

    def discriminator_init(self) -> str:
        """``discriminator_init_type``, or the reference's rule when it is empty: PyTorch's own
        initialisation for BasicSR's discriminator, N(0, 0.02) (``normal``) for the others."""
        if self.discriminator_init_type is not None:
            return self.discriminator_init_type
        name, _ = network_arguments(self.discriminator, DEFAULT_DISCRIMINATOR)
        return PYTORCH_DEFAULT_INIT if name in DEFAULT_INIT_DISCRIMINATORS else "normal"


register_task("srgan", SRGANConfig)


def load_initial_generator(cfg: SRGANConfig) -> nn.Module:
    """The generator of ``task.init_from``, checked against the configured scale."""
    generator, info = load_generator(cfg.init_from)
    generator.train()
    if int(info.scale) != cfg.scale:
        raise ConfigError(
            f"task.init_from {cfg.init_from!r} upscales x{info.scale} but task.scale is {cfg.scale}; "
            f"set task.scale={info.scale}."
        )
    if tuple(info.value_range) != (0.0, 1.0):
        raise ConfigError(f"task.init_from {cfg.init_from!r} is not an SR generator (value range {info.value_range}).")
    return generator


def build_discriminator(cfg: SRGANConfig) -> nn.Module:
    """The configured discriminator, initialised by :meth:`SRGANConfig.discriminator_init`."""
    init_type = cfg.discriminator_init()
    if init_type == PYTORCH_DEFAULT_INIT:
        # BasicSR never re-initialises its discriminator: the layers keep PyTorch's defaults.
        name, kwargs = network_arguments(cfg.discriminator, DEFAULT_DISCRIMINATOR)
        return create_model(name, **kwargs, in_channels=cfg.in_channels)
    return build_network(
        cfg.discriminator, DEFAULT_DISCRIMINATOR, in_channels=cfg.in_channels,
        init_type=init_type, init_gain=cfg.discriminator_init_gain,
    )


class SRGAN(SuperResolutionTask):
    name = "srgan"
    config_class = SRGANConfig
    ema_networks = ("G",)

    def __init__(self, config, *, feature_network: nn.Module | None = None) -> None:
        """``feature_network`` replaces VGG19 in the perceptual loss (any frozen feature module)."""
        super().__init__(config)
        cfg: SRGANConfig = config.task
        self.cfg = cfg
        if cfg.init_from:
            generator = load_initial_generator(cfg)
        else:
            generator = build_network(
                cfg.generator, DEFAULT_GENERATOR, scale=cfg.scale, in_channels=cfg.in_channels,
                out_channels=cfg.in_channels, init_type=cfg.generator_init_type, init_gain=cfg.generator_gain(),
            )
        self.networks = {"G": generator}
        self.perceptual: PerceptualLoss | None = None
        if cfg.stage == "gan":
            self.networks["D"] = build_discriminator(cfg)
            if cfg.lambda_perceptual > 0:
                self.perceptual = PerceptualLoss(
                    feature_network,
                    layer=cfg.perceptual_layer,
                    weights=cfg.vgg_weights or None,
                    criterion=cfg.perceptual_criterion,
                )
        data = config.data
        self.sr_augment = SRAugment(
            scale=cfg.scale,
            crop_size=data.crop_size,
            flip=data.flip,
            rotate=cfg.rotate,
            degradation=cfg.degradation,
            quantize=cfg.quantize_lr,
        )
        self._paired: dict[bool, bool] = {}

    def build_dataset(self, split: str, *, train: bool) -> SRDataset:
        d = self.config.data
        dataset = SRDataset(
            d.root,
            split,
            scale=self.cfg.scale,
            tile_size=d.load_size if train else 0,
            channels=self.cfg.in_channels,
            max_items=d.max_items if train else d.val_items,
        )
        self._paired[train] = dataset.paired
        return dataset

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {
            name: self.make_adam([p for p in net.parameters() if p.requires_grad], lr=self.cfg.lr, betas=betas)
            for name, net in self.networks.items()
        }

    def augment(self, batch: dict, *, train: bool) -> dict:
        paired = self._paired.get(train, self._paired.get(not train, False))
        if train:
            batch["a"], batch["b"] = self.sr_augment(batch["a"], batch["b"], paired=paired)
        elif not paired:
            batch["a"] = self.sr_augment.make_lr(batch["b"])
        return batch

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg, optimizers = self.cfg, self.optimizers
        lr, hr = batch["a"], batch["b"]
        sr = self.train_networks["G"](lr)

        if cfg.stage == "psnr":
            loss = pixel_loss(sr, hr, cfg.pixel_criterion)
            losses = {"pixel": loss.detach()}
            if cfg.lambda_tv > 0:
                tv = cfg.lambda_tv * total_variation_loss(sr)
                loss = loss + tv
                losses["tv"] = tv.detach()
            self.step(loss, optimizers["G"])
            return losses

        if cfg.update_order == "g_then_d":  # BasicSR: D then learns from the pre-update output
            losses = self._generator_step(sr, hr)
            return {"D": self._discriminator_step(hr, sr), **losses}
        loss_d = self._discriminator_step(hr, sr)
        return {"D": loss_d, **self._generator_step(sr, hr)}

    def _discriminator_step(self, hr: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
        """One discriminator update on real ``hr`` and the detached ``sr``; the detached loss."""
        cfg = self.cfg
        D = self.train_networks["D"]
        set_requires_grad(self.networks["D"], True)
        loss_d = discriminator_loss(D(hr), D(sr.detach()), cfg.gan_mode)
        if cfg.gan_mode == "wgangp":
            loss_d = loss_d + gradient_penalty(self.networks["D"], hr, sr.detach(), weight=cfg.lambda_gp)
        self.step(loss_d, self.optimizers["D"])
        return loss_d.detach()

    def _generator_step(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """One generator update against the frozen discriminator; the detached loss terms."""
        cfg = self.cfg
        # The frozen discriminator runs unwrapped so DDP does not wait for its grads.
        set_requires_grad(self.networks["D"], False)
        g_adv = cfg.lambda_adv * generator_loss(self.networks["D"](sr), cfg.gan_mode)
        total = g_adv
        losses = {"G_adv": g_adv.detach()}
        if cfg.lambda_pixel > 0:
            g_pixel = cfg.lambda_pixel * pixel_loss(sr, hr, cfg.pixel_criterion)
            total = total + g_pixel
            losses["G_pixel"] = g_pixel.detach()
        if self.perceptual is not None:
            g_perceptual = cfg.lambda_perceptual * self.perceptual(sr, hr)
            total = total + g_perceptual
            losses["G_perceptual"] = g_perceptual.detach()
        if cfg.lambda_tv > 0:
            g_tv = cfg.lambda_tv * total_variation_loss(sr)
            total = total + g_tv
            losses["G_tv"] = g_tv.detach()
        self.step(total, self.optimizers["G"])
        return losses

    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        lr = batch["a"]
        return {
            # Nearest upscaling shows the LR pixels at the output's size in sample grids.
            "input": F.interpolate(lr, scale_factor=self.cfg.scale, mode="nearest"),
            "output": networks["G"](lr).clamp(0.0, 1.0),
            "target": batch["b"],
        }

    def exported_generators(self) -> dict[str, tuple[str, GeneratorInfo]]:
        spec = model_spec(self.networks["G"])
        info = GeneratorInfo(
            model=spec["name"],
            kwargs=spec["kwargs"],
            value_range=(0.0, 1.0),
            scale=self.cfg.scale,
            task="srgan",
        )
        return {"generator": ("G", info)}
