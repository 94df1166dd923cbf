"""CycleGAN (Zhu et al., 2017): unpaired translation between domains A and B.

Two generators (G_A: A -> B, G_B: B -> A) and two discriminators (D_A judges domain B, D_B judges
domain A). Losses: GAN (LSGAN by default), cycle consistency lambda_cycle * (|G_B(G_A(a)) - a| +
|G_A(G_B(b)) - b|), and identity lambda_cycle * lambda_identity * (|G_A(b) - b| + |G_B(a) - a|)
(the identity weight is relative to the cycle weight, as in the paper's code). The discriminators
see generated images through a history pool.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo
from i2i.config import TaskConfig, register_task
from i2i.data.augment import PairedAugment
from i2i.data.datasets import UnalignedDataset
from i2i.errors import ConfigError
from i2i.imageops import to_unit_range
from i2i.losses import discriminator_loss, generator_loss, gradient_penalty
from i2i.metrics import frechet_distance, load_inception
from i2i.registry import model_spec
from i2i.tasks.base import Task, build_networks, check_common_options, check_network_section, set_requires_grad

__all__ = ["CycleGAN", "CycleGANConfig", "ImagePool"]

DEFAULT_GENERATOR = {"name": "resnet_9blocks", "base_channels": 64, "norm": "instance", "dropout": False}
DEFAULT_DISCRIMINATOR = {"name": "patchgan", "base_channels": 64, "n_layers": 3, "norm": "instance"}


@dataclass(frozen=True)
class CycleGANConfig(TaskConfig):
    """CycleGAN hyperparameters; the defaults are the paper's.

    ``in_channels`` are domain A's channels, ``out_channels`` domain B's. ``lambda_cycle`` weighs
    both cycle-consistency terms; ``lambda_identity`` the identity terms, relative to
    ``lambda_cycle`` (0 turns them off). All four networks are initialised with ``init_type`` /
    ``init_gain``. ``pool_size`` is the history of generated images each discriminator draws from.
    ``fid_weights`` is an Inception v3 weights file for validation FID (default: torchvision's
    cache; FID is skipped without it).
    """

    name: str = "cyclegan"
    generator: dict = field(default_factory=lambda: dict(DEFAULT_GENERATOR))
    discriminator: dict = field(default_factory=lambda: dict(DEFAULT_DISCRIMINATOR))
    in_channels: int = 3
    out_channels: int = 3
    init_type: str = "normal"
    init_gain: float = 0.02
    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_gp: float = 10.0
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    serial_batches: bool = False
    fid_weights: str = ""

    #: The paper code's separate cycle weights, one weight here (``lambda_cycle``).
    renamed_keys = {"lambda_A": "lambda_cycle", "lambda_B": "lambda_cycle"}

    def validate(self) -> None:
        check_common_options(self)
        check_network_section(
            "task.generator", self.generator, DEFAULT_GENERATOR,
            fixed={"in_channels": "task.in_channels / out_channels", "out_channels": "task.out_channels / in_channels"},
        )
        check_network_section(
            "task.discriminator", self.discriminator, DEFAULT_DISCRIMINATOR,
            fixed={"in_channels": "task.in_channels / out_channels"},
        )
        if self.lambda_identity > 0 and self.in_channels != self.out_channels:
            raise ConfigError(
                f"The identity loss feeds domain B images ({self.out_channels} channels) into G_A, which takes "
                f"{self.in_channels}; with different channel counts set task.lambda_identity=0."
            )

    @classmethod
    def upgrade_saved(cls, raw: dict) -> dict:
        """Runs saved before ``lambda_cycle`` hold ``lambda_A`` and ``lambda_B``: equal ones become
        ``lambda_cycle``; different ones need the user to choose (``--set task.lambda_cycle=X``)."""
        old = {k: raw.pop(k) for k in ("lambda_A", "lambda_B") if k in raw}
        if not old or "lambda_cycle" in raw:
            return raw
        if len(set(old.values())) > 1:
            raise ConfigError(
                f"This run was saved with task.lambda_A={old.get('lambda_A')} and task.lambda_B="
                f"{old.get('lambda_B')}; i2i now has one cycle weight, task.lambda_cycle. Resume with "
                "--set task.lambda_cycle=VALUE to choose it."
            )
        raw["lambda_cycle"] = next(iter(old.values()))
        return raw


register_task("cyclegan", CycleGANConfig)


class ImagePool:
    """A history of generated images (Shrivastava et al., 2017), as CycleGAN uses it.

    Until the pool holds ``size`` images, each queried image is stored and returned. After that,
    each image is returned as it is with probability 1/2; otherwise a random stored image is
    returned and the new one takes its place. ``size=0`` turns the pool off. Uses Python's
    ``random``, whose state the trainer checkpoints.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                slot = random.randint(0, self.size - 1)
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class CycleGAN(Task):
    name = "cyclegan"
    config_class = CycleGANConfig
    ema_networks = ("G_A", "G_B")

    def __init__(self, config) -> None:
        super().__init__(config)
        cfg: CycleGANConfig = config.task
        self.cfg = cfg
        ch_a, ch_b = cfg.in_channels, cfg.out_channels
        g, d = (cfg.generator, DEFAULT_GENERATOR), (cfg.discriminator, DEFAULT_DISCRIMINATOR)
        self.networks = build_networks(
            {
                "G_A": (*g, {"in_channels": ch_a, "out_channels": ch_b}),
                "G_B": (*g, {"in_channels": ch_b, "out_channels": ch_a}),
                "D_A": (*d, {"in_channels": ch_b}),
                "D_B": (*d, {"in_channels": ch_a}),
            },
            init_type=cfg.init_type,
            init_gain=cfg.init_gain,
        )
        self.pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
        self.augmentation = PairedAugment.from_config(config.data, value_range=self.value_range, paired=False)
        self._fid: dict[str, list[torch.Tensor]] = {}
        self.fid_network: nn.Module | None = None
        self._fid_unavailable = ""

    def build_dataset(self, split: str, *, train: bool) -> UnalignedDataset:
        d = self.config.data
        return UnalignedDataset(
            d.root,
            split,
            preprocess=d.preprocess,
            load_size=d.load_size,
            crop_size=d.crop_size,
            in_channels=self.cfg.in_channels,
            out_channels=self.cfg.out_channels,
            value_range=self.value_range,
            max_items=d.max_items if train else d.val_items,
            size_multiple=getattr(self.networks["G_A"], "size_multiple", 1),
            serial_batches=self.cfg.serial_batches or not train,
            seed=self.config.seed,
            min_items=d.batch_size if train else 1,
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.cfg.beta1, self.cfg.beta2)
        generators = [*self.networks["G_A"].parameters(), *self.networks["G_B"].parameters()]
        discriminators = [*self.networks["D_A"].parameters(), *self.networks["D_B"].parameters()]
        return {
            "G": self.make_adam(generators, lr=self.cfg.lr, betas=betas),
            "D": self.make_adam(discriminators, lr=self.cfg.lr, betas=betas),
        }

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg, nets, plain = self.cfg, self.train_networks, self.networks
        real_a, real_b = batch["a"], batch["b"]
        fake_b = nets["G_A"](real_a)
        rec_a = nets["G_B"](fake_b)
        fake_a = nets["G_B"](real_b)
        rec_b = nets["G_A"](fake_a)

        # Generators first, as in the paper's code; the frozen discriminators run unwrapped so
        # DDP does not wait for their gradients.
        set_requires_grad([plain["D_A"], plain["D_B"]], False)
        losses = {
            "G_A": generator_loss(plain["D_A"](fake_b), cfg.gan_mode),
            "G_B": generator_loss(plain["D_B"](fake_a), cfg.gan_mode),
            "cycle_A": F.l1_loss(rec_a.float(), real_a.float()) * cfg.lambda_cycle,
            "cycle_B": F.l1_loss(rec_b.float(), real_b.float()) * cfg.lambda_cycle,
        }
        if cfg.lambda_identity > 0:
            idt_a = F.l1_loss(nets["G_A"](real_b).float(), real_b.float())
            idt_b = F.l1_loss(nets["G_B"](real_a).float(), real_a.float())
            losses["idt_A"] = idt_a * cfg.lambda_cycle * cfg.lambda_identity
            losses["idt_B"] = idt_b * cfg.lambda_cycle * cfg.lambda_identity
        # sum() adds in the reference's order (0 + a is exact); its type is Tensor | 0 only on paper.
        self.step(cast(torch.Tensor, sum(losses.values())), self.optimizers["G"])

        # Discriminators, on images drawn from the history pools.
        set_requires_grad([plain["D_A"], plain["D_B"]], True)
        pooled_b = self.pools["B"].query(fake_b.detach())
        pooled_a = self.pools["A"].query(fake_a.detach())
        losses["D_A"] = discriminator_loss(nets["D_A"](real_b), nets["D_A"](pooled_b), cfg.gan_mode)
        losses["D_B"] = discriminator_loss(nets["D_B"](real_a), nets["D_B"](pooled_a), cfg.gan_mode)
        loss_d = losses["D_A"] + losses["D_B"]
        if cfg.gan_mode == "wgangp":
            loss_d = loss_d + gradient_penalty(plain["D_A"], real_b, pooled_b, weight=cfg.lambda_gp)
            loss_d = loss_d + gradient_penalty(plain["D_B"], real_a, pooled_a, weight=cfg.lambda_gp)
        self.step(loss_d, self.optimizers["D"])
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["a"], batch["b"]
        fake_b, fake_a = networks["G_A"](real_a), networks["G_B"](real_b)
        images = {
            "real_A": real_a, "fake_B": fake_b, "rec_A": networks["G_B"](fake_b),
            "real_B": real_b, "fake_A": fake_a, "rec_B": networks["G_A"](fake_a),
        }
        if self.cfg.in_channels == self.cfg.out_channels:
            images["idt_A"], images["idt_B"] = networks["G_A"](real_b), networks["G_B"](real_a)
        return images

    def sample_rows(self) -> tuple[tuple[str, ...], ...]:
        return (("real_A", "fake_B", "rec_A"), ("real_B", "fake_A", "rec_B"))

    def validation_metrics(self, images: dict[str, torch.Tensor]) -> dict[str, float]:
        """Cycle-reconstruction and identity L1 in [0, 1]; collects features for FID."""
        unit = {k: to_unit_range(v, self.value_range) for k, v in images.items()}
        metrics = {
            "cycle_A": float((unit["rec_A"] - unit["real_A"]).abs().mean()),
            "cycle_B": float((unit["rec_B"] - unit["real_B"]).abs().mean()),
        }
        if "idt_A" in unit:
            metrics["idt_A"] = float((unit["idt_A"] - unit["real_B"]).abs().mean())
            metrics["idt_B"] = float((unit["idt_B"] - unit["real_A"]).abs().mean())
        network = self._fid_network(images["real_A"].device)
        if network is not None:
            for key in ("fake_B", "real_B", "fake_A", "real_A"):
                self._fid.setdefault(key, []).append(network(unit[key]).float())
        return metrics

    def _fid_network(self, device: torch.device) -> nn.Module | None:
        if self.fid_network is None and not self._fid_unavailable:
            try:
                self.fid_network = load_inception(self.cfg.fid_weights or None)
            except FileNotFoundError as exc:
                self._fid_unavailable = str(exc)
                self.print(f"FID skipped: {exc}")
                return None
        if self.fid_network is not None:
            self.fid_network.to(device)
        return self.fid_network

    def validation_summary(self, gather) -> dict[str, float]:
        features, self._fid = self._fid, {}
        if not features:
            return {}
        f = {k: gather(torch.cat(v)) for k, v in features.items()}
        if min(len(v) for v in f.values()) < 2:
            return {}
        return {"fid_B": frechet_distance(f["fake_B"], f["real_B"]), "fid_A": frechet_distance(f["fake_A"], f["real_A"])}

    def exported_generators(self) -> dict[str, tuple[str, GeneratorInfo]]:
        out = {}
        for name, direction in (("G_A", "AtoB"), ("G_B", "BtoA")):
            spec = model_spec(self.networks[name])
            out[name] = (
                name,
                GeneratorInfo(model=spec["name"], kwargs=spec["kwargs"], value_range=self.value_range, task="cyclegan", direction=direction),
            )
        return out

    def extra_state(self) -> dict[str, Any]:
        return {f"pool_{k}": [t.cpu() for t in p.images] for k, p in self.pools.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = next(self.networks["G_A"].parameters()).device
        for k, pool in self.pools.items():
            pool.images = [t.to(device) for t in state.get(f"pool_{k}", [])]
