"""pix2pix (Isola et al., 2017): a conditional GAN for paired image-to-image translation.

The generator maps A to B; the PatchGAN discriminator judges (A, B) pairs, so it sees the input
and either the real or the generated output. Loss: GAN + lambda_l1 * L1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.config import TaskConfig, register_task
from i2i.data.augment import PairedAugment
from i2i.data.datasets import PairedDataset
from i2i.errors import ConfigError
from i2i.losses import discriminator_loss, generator_loss, gradient_penalty
from i2i.registry import model_spec
from i2i.tasks.base import Task, build_network, check_common_options, check_network_section, set_requires_grad

__all__ = ["Pix2Pix", "Pix2PixConfig"]

DEFAULT_GENERATOR = {"name": "unet_256", "base_channels": 64, "norm": "batch", "dropout": True}
DEFAULT_DISCRIMINATOR = {"name": "patchgan", "base_channels": 64, "n_layers": 3, "norm": "batch"}


@dataclass(frozen=True)
class Pix2PixConfig(TaskConfig):
    """pix2pix hyperparameters; the defaults are the paper's.

    ``generator`` and ``discriminator`` name a registered model and its keyword arguments; keys
    given in a config are merged over the defaults when the model name is unchanged. Both are
    initialised with ``init_type`` / ``init_gain`` (the paper's N(0, 0.02)).
    ``init_from`` starts the generator from a trained file (an i2i generator or an official
    pytorch-CycleGAN-and-pix2pix ``*_net_G.pth``); its architecture then comes from the file.
    ``freeze_encoder`` keeps the generator's encoder fixed while fine-tuning.
    """

    name: str = "pix2pix"
    generator: dict = field(default_factory=lambda: dict(DEFAULT_GENERATOR))
    discriminator: dict = field(default_factory=lambda: dict(DEFAULT_DISCRIMINATOR))
    in_channels: int = 3
    out_channels: int = 3
    init_type: str = "normal"
    init_gain: float = 0.02
    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    lambda_gp: float = 10.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    init_from: str = ""
    freeze_encoder: bool = False

    def validate(self) -> None:
        check_common_options(self)
        channels = {"in_channels": "task.in_channels", "out_channels": "task.out_channels"}
        check_network_section("task.generator", self.generator, DEFAULT_GENERATOR, fixed=channels)
        check_network_section(
            "task.discriminator", self.discriminator, DEFAULT_DISCRIMINATOR,
            fixed={"in_channels": "task.in_channels + task.out_channels"},
        )


register_task("pix2pix", Pix2PixConfig)


def generator_encoder(generator: nn.Module) -> nn.Module:
    """A generator's encoder (its ``encoder`` module), which fine-tuning may freeze."""
    encoder = getattr(generator, "encoder", None)
    if encoder is None:
        raise ConfigError(
            f"task.freeze_encoder is set but {type(generator).__name__} has no encoder to freeze; "
            "use a U-Net or ResNet generator or set freeze_encoder: false."
        )
    return encoder


def load_initial_generator(cfg: Pix2PixConfig) -> nn.Module:
    """The generator of ``task.init_from``, checked against the configured channels."""
    generator, info = load_generator(cfg.init_from)
    generator.train()
    channels = (info.kwargs.get("in_channels"), info.kwargs.get("out_channels"))
    if channels != (cfg.in_channels, cfg.out_channels):
        raise ConfigError(
            f"task.init_from {cfg.init_from!r} maps {channels[0]} to {channels[1]} channels but the config "
            f"asks for {cfg.in_channels} to {cfg.out_channels}; set task.in_channels/out_channels to match."
        )
    return generator


class Pix2Pix(Task):
    name = "pix2pix"
    config_class = Pix2PixConfig
    ema_networks = ("G",)

    def __init__(self, config) -> None:
        super().__init__(config)
        cfg: Pix2PixConfig = config.task
        self.cfg = cfg
        init: dict[str, Any] = {"init_type": cfg.init_type, "init_gain": cfg.init_gain}
        if cfg.init_from:
            generator = load_initial_generator(cfg)
        else:
            generator = build_network(
                cfg.generator, DEFAULT_GENERATOR, in_channels=cfg.in_channels, out_channels=cfg.out_channels, **init
            )
        discriminator = build_network(
            cfg.discriminator, DEFAULT_DISCRIMINATOR, in_channels=cfg.in_channels + cfg.out_channels, **init
        )
        if cfg.freeze_encoder:
            set_requires_grad(generator_encoder(generator), False)
        self.networks = {"G": generator, "D": discriminator}
        self.augmentation = PairedAugment.from_config(config.data, value_range=self.value_range, paired=True)

    @property
    def value_range(self) -> tuple[float, float]:
        return tuple(getattr(self.networks["G"], "value_range", (-1.0, 1.0)))

    def build_dataset(self, split: str, *, train: bool) -> PairedDataset:
        d = self.config.data
        return PairedDataset(
            d.root,
            split,
            layout=d.layout,
            direction=d.direction,
            preprocess=d.preprocess,
            load_size=d.load_size,
            crop_size=d.crop_size,
            in_channels=self.cfg.in_channels,
            out_channels=self.cfg.out_channels,
            value_range=self.value_range,
            max_items=d.max_items if train else d.val_items,
            size_multiple=getattr(self.networks["G"], "size_multiple", 1),
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.cfg.beta1, self.cfg.beta2)
        g_params = [p for p in self.networks["G"].parameters() if p.requires_grad]
        return {
            "G": self.make_adam(g_params, lr=self.cfg.lr, betas=betas),
            "D": self.make_adam(self.networks["D"].parameters(), lr=self.cfg.lr, betas=betas),
        }

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        G, D, plain_d = self.train_networks["G"], self.train_networks["D"], self.networks["D"]
        a, b = batch["a"], batch["b"]
        fake = G(a)

        # Discriminator first, on the detached output, as in the paper's code.
        set_requires_grad(plain_d, True)
        real_logits = D(torch.cat([a, b], 1))
        fake_logits = D(torch.cat([a, fake.detach()], 1))
        loss_d = discriminator_loss(real_logits, fake_logits, cfg.gan_mode)
        if cfg.gan_mode == "wgangp":
            loss_d = loss_d + gradient_penalty(
                lambda x: plain_d(torch.cat([a, x], 1)), b, fake.detach(), weight=cfg.lambda_gp
            )
        self.step(loss_d, self.optimizers["D"])

        # Generator: the frozen discriminator runs unwrapped so DDP does not wait for its grads.
        set_requires_grad(plain_d, False)
        loss_g_gan = generator_loss(plain_d(torch.cat([a, fake], 1)), cfg.gan_mode)
        loss_g_l1 = F.l1_loss(fake.float(), b.float()) * cfg.lambda_l1
        self.step(loss_g_gan + loss_g_l1, self.optimizers["G"])
        return {
            "D": loss_d.detach(),
            "G_gan": loss_g_gan.detach(),
            "G_l1": loss_g_l1.detach(),
        }

    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        return {"input": batch["a"], "output": networks["G"](batch["a"]), "target": batch["b"]}

    def exported_generators(self) -> dict[str, tuple[str, GeneratorInfo]]:
        spec = model_spec(self.networks["G"])
        info = GeneratorInfo(
            model=spec["name"],
            kwargs=spec["kwargs"],
            value_range=self.value_range,
            task="pix2pix",
            direction=self.config.data.direction,
        )
        return {"generator": ("G", info)}
