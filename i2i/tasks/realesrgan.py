"""Real-ESRGAN (Wang et al., 2021): blind super-resolution trained on synthetic real-world degradations.

Two stages, as Real-ESRGAN trains (``options/train_realesrnet_x4plus.yml``, then
``train_realesrgan_x4plus.yml``):

1. ``stage: realesrnet``: the generator alone on the L1 loss (against the USM-sharpened HR when
   ``l1_gt_usm``). This is Real-ESRNet, the PSNR-oriented model.
2. ``stage: realesrgan``: starts from the stage-1 generator (``init_from``) and adds Real-ESRGAN's
   U-Net discriminator with spectral norm: ``lambda_pixel * L1 + lambda_perceptual * VGG +
   lambda_adv * GAN``. The perceptual loss is the L1 distance of VGG19 ``conv1_2``, ``conv2_2``,
   ``conv3_4``, ``conv4_4`` and ``conv5_4`` features (before ReLU, ImageNet-normalised input)
   weighted 0.1, 0.1, 1, 1, 1; the GAN is vanilla with weight 0.1. The L1 and perceptual targets
   are USM-sharpened, the discriminator's real images are not (``l1_gt_usm``, ``percep_gt_usm``,
   ``gan_gt_usm``). Each step updates the generator first, then the discriminator on the same
   output, as Real-ESRGAN's ``optimize_parameters`` does.

Data (``degradation``):

- ``synthetic``: an HR-only folder. The loader cuts ``data.load_size`` tiles (400 in the recipes,
  Real-ESRGAN's crop-or-pad size); on the device each tile is flipped (``data.flip``; 90-degree
  turns with ``rotate``), degraded by the two-order model of :class:`i2i.data.degradations.Degrader`
  (blur, resize, noise, JPEG, twice, then the sinc filter) which crops ``data.crop_size`` HR and
  ``crop_size / scale`` LR patches, and the pair goes through the training pair pool
  (:class:`~i2i.data.degradations.TrainingPairPool`, Real-ESRGAN's ``_dequeue_and_enqueue``) that
  mixes degradations across batches. The pool is checkpointed, so resumed runs are exact.
- ``paired``: your own LR/HR pairs (``root/LR/<split>`` and ``root/HR/<split>``, as
  ``finetune_realesrgan_x4plus_pairdata.yml``): an aligned random crop and the same flips.

Validation uses the SR data set's ``data.val_split``: LR/HR pairs give PSNR/SSIM (RGB, ``scale``
pixels of border cropped, as Real-ESRGAN's validation settings); an HR-only folder is shrunk with
MATLAB bicubic; with ``val_lr_only`` the folder holds real LR photos without HR and validation
reports the no-reference NIQE of the outputs (lower is better).

Fine-tuning: ``init_from`` names the generator (a file, a run folder, or a catalogue name such as
``RealESRGAN_x4plus``) and ``discriminator_init_from`` the discriminator (a Real-ESRGAN ``net_d``
file or a catalogue name such as ``RealESRGAN_x4plus_netD``); architectures come from the files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator, locate_model
from i2i.config import RunConfig, TaskConfig, check_choice, register_task
from i2i.data.degradations import DegradationConfig, Degrader, TrainingPairPool, usm_sharpen
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
    pixel_loss,
)
from i2i.registry import model_spec
from i2i.tasks.base import SuperResolutionTask, build_network, check_network_section, set_requires_grad

__all__ = ["RealESRGAN", "RealESRGANConfig", "STAGES", "DATA_MODES", "PERCEPTUAL_LAYERS", "paired_flips", "upscale"]

STAGES = ("realesrnet", "realesrgan")
DATA_MODES = ("synthetic", "paired")
#: Real-ESRGAN's ``network_g`` (RRDBNet) and ``network_d`` (UNetDiscriminatorSN).
DEFAULT_GENERATOR = {"name": "rrdbnet", "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
DEFAULT_DISCRIMINATOR = {"name": "unet_discriminator", "num_feat": 64, "skip_connection": True}
#: Real-ESRGAN's ``perceptual_opt.layer_weights``: VGG19 features before ReLU.
PERCEPTUAL_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
_RGB = "Real-ESRGAN's RGB images (3 channels)"


@dataclass(frozen=True)
class RealESRGANConfig(TaskConfig):
    """Real-ESRGAN hyperparameters; the defaults are ``train_realesrgan_x4plus.yml``'s.

    ``generator``/``discriminator`` name a registered model and its keyword arguments (merged
    over the defaults when the name is unchanged); the generator gets ``scale`` and RGB channels
    from the task. ``init_from`` / ``discriminator_init_from`` start them from files instead
    (their architecture then comes from the file). ``degradations`` holds every probability and
    range of the two-order degradation model and the pool size
    (:class:`~i2i.data.degradations.DegradationConfig`, Real-ESRGAN's defaults); it is used with
    ``degradation: synthetic``. ``rotate`` adds Real-ESRGAN's ``use_rot`` (vertical flips and
    transposes) to the horizontal flips of ``data.flip``.

    ``perceptual_layers`` maps VGG19 layer names to weights; ``vgg_weights`` is torchvision's
    ``vgg19-dcbb9e9d.pth`` (empty: torchvision's cache; nothing is downloaded).
    ``val_lr_only``: the validation split holds real LR images without HR (``root/<val_split>``);
    validation reports NIQE.
    """

    name: str = "realesrgan"
    stage: str = "realesrgan"
    scale: int = 4
    generator: dict = field(default_factory=lambda: dict(DEFAULT_GENERATOR))
    discriminator: dict = field(default_factory=lambda: dict(DEFAULT_DISCRIMINATOR))
    init_from: str = ""
    discriminator_init_from: str = ""
    degradation: str = "synthetic"
    degradations: DegradationConfig = field(default_factory=DegradationConfig)
    rotate: bool = False
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False
    pixel_criterion: str = "l1"
    lambda_pixel: float = 1.0
    perceptual_layers: dict = field(default_factory=lambda: dict(PERCEPTUAL_LAYERS))
    perceptual_criterion: str = "l1"
    lambda_perceptual: float = 1.0
    vgg_weights: str = ""
    gan_mode: str = "vanilla"
    lambda_adv: float = 0.1
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.99
    val_lr_only: bool = False
    generator_init_type: str = "scaled_kaiming"
    generator_init_gain: float = 0.1
    discriminator_init_type: str = "kaiming"
    discriminator_init_gain: float = 0.02

    def validate(self) -> None:
        check_choice("task.stage", self.stage, STAGES)
        check_choice("task.degradation", self.degradation, DATA_MODES)
        check_choice("task.pixel_criterion", self.pixel_criterion, PIXEL_CRITERIA)
        check_choice("task.perceptual_criterion", self.perceptual_criterion, PIXEL_CRITERIA)
        check_choice("task.gan_mode", self.gan_mode, GAN_MODES)
        check_choice("task.generator_init_type", self.generator_init_type, INIT_TYPES)
        check_choice("task.discriminator_init_type", self.discriminator_init_type, INIT_TYPES)
        if self.scale < 1:
            raise ConfigError(f"task.scale is {self.scale}; use the generator's upscaling factor (4, 2 or 1).")
        for key in ("lambda_pixel", "lambda_perceptual", "lambda_adv"):
            if getattr(self, key) < 0:
                raise ConfigError(f"task.{key} is {getattr(self, key)}; loss weights must be >= 0 (0 turns it off).")
        if self.lr <= 0:
            raise ConfigError(f"task.lr is {self.lr}; it must be positive (Real-ESRGAN: 1e-4, Real-ESRNet: 2e-4).")
        self._check_perceptual_layers()
        try:
            self.degradations.validate()
        except ConfigError as exc:  # its messages name the field alone
            raise ConfigError(f"task.degradations.{exc}") from None
        check_network_section(
            "task.generator", self.generator, DEFAULT_GENERATOR,
            fixed={"scale": "task.scale", "in_channels": _RGB, "out_channels": _RGB},
        )
        check_network_section("task.discriminator", self.discriminator, DEFAULT_DISCRIMINATOR, fixed={"in_channels": _RGB})

    def _check_perceptual_layers(self) -> None:
        for layer, weight in self.perceptual_layers.items():
            check_choice("task.perceptual_layers key", layer, list(VGG19_LAYERS))
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"task.perceptual_layers.{layer} is {weight!r}; layer weights are numbers >= 0.")
        if not self.perceptual_layers and self.lambda_perceptual > 0:
            raise ConfigError(
                "task.perceptual_layers is empty but task.lambda_perceptual is above 0; name VGG19 layers "
                "and weights (Real-ESRGAN: {conv1_2: 0.1, conv2_2: 0.1, conv3_4: 1, conv4_4: 1, conv5_4: 1}) "
                "or set task.lambda_perceptual=0."
            )

    @property
    def uses_gan(self) -> bool:
        return self.stage == "realesrgan"


register_task("realesrgan", RealESRGANConfig)


# --- helpers --------------------------------------------------------------------------------------
def paired_flips(images: list[torch.Tensor], *, hflip: bool, rotate: bool) -> list[torch.Tensor]:
    """The same random flips for each sample of every ``(B, C, H, W)`` tensor in ``images``.

    BasicSR's ``augment``: a horizontal flip with probability 1/2 (``hflip``); with ``rotate``
    also a vertical flip and a transpose (square images only), each with probability 1/2, which
    together give the eight symmetries of the square. Tensors of different sizes (an LR patch and
    its HR patch) stay aligned. The draws come from the CPU generator, whatever the device.
    """
    batch = images[0].shape[0]
    ops = (["h"] if hflip else []) + (["v", "t"] if rotate else [])
    for op in ops:
        chosen = (torch.rand(batch) < 0.5).view(-1, 1, 1, 1).to(images[0].device)
        flipped = []
        for image in images:
            turned = image.flip(-1) if op == "h" else image.flip(-2) if op == "v" else image.transpose(-1, -2)
            flipped.append(torch.where(chosen, turned, image))
        images = flipped
    return images


def upscale(generator: nn.Module, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """``generator(lr)`` for any LR size: padded (reflect) to the generator's ``size_multiple``
    (RRDBNet x2 and x1 pixel-unshuffle their input), the output cropped back to ``scale`` x LR."""
    multiple = int(getattr(generator, "size_multiple", 1))
    height, width = lr.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        lr = F.pad(lr, (0, pad_w, 0, pad_h), mode="reflect")
    return generator(lr)[..., : height * scale, : width * scale]


def _niqe() -> Any:
    """``niqe_batch(images (B, C, H, W) in [0, 1], crop_border=...) -> (B,)`` (:mod:`i2i.niqe`),
    or None in an i2i without it (imported lazily: it loads its pristine model on first use)."""
    try:
        from i2i.niqe import niqe_batch
    except ImportError:
        return None
    return niqe_batch


def load_initial_generator(cfg: RealESRGANConfig) -> nn.Module:
    """The generator of ``task.init_from`` (in training mode), checked against the task."""
    generator, info = load_generator(cfg.init_from)
    where = f"task.init_from {cfg.init_from!r}"
    if int(info.scale) != cfg.scale:
        raise ConfigError(f"{where} upscales x{info.scale} but task.scale is {cfg.scale}; set task.scale={info.scale}.")
    if tuple(info.value_range) != (0.0, 1.0):
        raise ConfigError(f"{where} is not a super-resolution generator (value range {info.value_range}).")
    if getattr(generator, "model_spec", None) is None:
        raise ConfigError(
            f"{where} is a {info.model} loaded through spandrel; i2i trains only its own registered models "
            "(rrdbnet, srvgg_compact, ...). Start from an RRDBNet file such as RealESRGAN_x4plus."
        )
    return generator.train()


def load_initial_discriminator(spec: str) -> nn.Module:
    """The discriminator of ``task.discriminator_init_from``: a Real-ESRGAN ``net_d`` file (or any
    discriminator file :mod:`i2i.foreign` reads) or a catalogue name, in training mode."""
    from i2i.foreign import build_imported, import_checkpoint

    imported = import_checkpoint(locate_model(spec))
    if imported.model != "unet_discriminator":
        raise ConfigError(
            f"task.discriminator_init_from {spec!r} holds a {imported.model} ({imported.source}), not "
            "Real-ESRGAN's U-Net discriminator; give a net_d file such as RealESRGAN_x4plus_netD."
        )
    return build_imported(imported).train()


# --- the task -------------------------------------------------------------------------------------
class RealESRGAN(SuperResolutionTask):
    name = "realesrgan"
    config_class = RealESRGANConfig
    ema_networks = ("G",)

    def __init__(self, config: RunConfig, *, feature_network: nn.Module | None = None) -> None:
        """``feature_network`` replaces VGG19 in the perceptual loss: a frozen module returning
        ``{layer name: features}`` for the names of ``task.perceptual_layers``."""
        super().__init__(config)
        cfg = cast(RealESRGANConfig, config.task)
        self.cfg = cfg
        self._check_data_options()
        self.networks = {"G": self._build_generator()}
        self.perceptual: PerceptualLoss | None = None
        if cfg.uses_gan:
            self.networks["D"] = self._build_discriminator()
            if cfg.lambda_perceptual > 0:
                self.perceptual = PerceptualLoss(
                    feature_network, layer_weights=cfg.perceptual_layers, weights=cfg.vgg_weights or None,
                    criterion=cfg.perceptual_criterion,
                )
        crop = config.data.crop_size
        synthetic = cfg.degradation == "synthetic"
        self.degrader = Degrader(cfg.degradations, scale=cfg.scale, crop_size=crop) if synthetic else None
        pool_size = cfg.degradations.pool_size
        self.pool = TrainingPairPool(pool_size) if synthetic and pool_size > 0 else None
        # Paired crops, and the bicubic LR of HR-only validation images.
        self.sr_augment = SRAugment(scale=cfg.scale, crop_size=crop, flip=False, rotate=False)
        self._paired: dict[bool, bool] = {}
        self._niqe: Callable[..., torch.Tensor] | None = _niqe() if cfg.val_lr_only else None
        if cfg.val_lr_only and self._niqe is None:
            raise ConfigError("task.val_lr_only needs the NIQE metric (i2i.niqe), which this i2i lacks.")

    def _check_data_options(self) -> None:
        cfg, data = self.cfg, self.config.data
        if data.crop_size % cfg.scale or (cfg.uses_gan and data.crop_size % 8):
            raise ConfigError(
                f"data.crop_size is {data.crop_size}; it must be a multiple of task.scale ({cfg.scale})"
                + (" and of 8 (the U-Net discriminator halves it three times)" if cfg.uses_gan else "")
                + ", e.g. 256 as Real-ESRGAN."
            )
        pool = cfg.degradations.pool_size
        if cfg.degradation == "synthetic" and pool and pool % data.batch_size:
            raise ConfigError(
                f"task.degradations.pool_size ({pool}) must be a multiple of data.batch_size ({data.batch_size}), "
                "as Real-ESRGAN's queue_size; Real-ESRGAN uses 180 with batches of 12."
            )

    def _build_generator(self) -> nn.Module:
        cfg = self.cfg
        if cfg.init_from:
            return load_initial_generator(cfg)
        return build_network(
            cfg.generator, DEFAULT_GENERATOR, scale=cfg.scale, in_channels=3, out_channels=3,
            init_type=cfg.generator_init_type, init_gain=cfg.generator_init_gain,
        )

    def _build_discriminator(self) -> nn.Module:
        cfg = self.cfg
        if cfg.discriminator_init_from:
            return load_initial_discriminator(cfg.discriminator_init_from)
        return build_network(
            cfg.discriminator, DEFAULT_DISCRIMINATOR, in_channels=3,
            init_type=cfg.discriminator_init_type, init_gain=cfg.discriminator_init_gain,
        )

    # --- data ---------------------------------------------------------------------------------
    def build_dataset(self, split: str, *, train: bool) -> SRDataset:
        cfg, d = self.cfg, self.config.data
        if not train and cfg.val_lr_only:
            # Real LR photos: read as an "HR-only" folder at scale 1 (the batch's "b" is the photo).
            return SRDataset(d.root, split, scale=1, tile_size=0, max_items=d.val_items)
        dataset = SRDataset(
            d.root, split, scale=cfg.scale, tile_size=d.load_size if train else 0,
            max_items=d.max_items if train else d.val_items,
        )
        if train and dataset.paired != (cfg.degradation == "paired"):
            raise ConfigError(
                f"task.degradation is {cfg.degradation} but {d.root}/{split} is "
                + ("an LR/HR pair layout; set task.degradation=paired." if dataset.paired else
                   f"an HR-only folder; paired training needs {d.root}/LR/{split} and {d.root}/HR/{split} "
                   "(or set task.degradation=synthetic).")
            )
        self._paired[train] = dataset.paired
        return dataset

    def augment(self, batch: dict, *, train: bool) -> dict:
        """Training: LR made on the device (synthetic) or cropped pairs, flips, and ``b_usm``, the
        sharpened HR the losses compare against. Evaluation: the LR of each validation image."""
        if not train:
            if self.cfg.val_lr_only:
                batch["a"] = batch.pop("b")
            elif not self._paired.get(False, False):
                batch["a"] = self.sr_augment.make_lr(batch["b"])
            return batch
        flip, rotate = self.config.data.flip, self.cfg.rotate
        if self.degrader is None:
            lq, gt = self.sr_augment(batch["a"], batch["b"], paired=True)
            lq, gt = paired_flips([lq, gt], hflip=flip, rotate=rotate)
            gt_usm = usm_sharpen(gt) if self._needs_usm() else gt
        else:
            (tile,) = paired_flips([batch["b"]], hflip=flip, rotate=rotate)
            lq, gt, gt_usm = self.degrader(tile)
            # A short last batch of an epoch passes by the pool, which swaps whole batches.
            if self.pool is not None and lq.shape[0] == self.config.data.batch_size:
                lq, gt = self.pool(lq, gt)
                # The pool hands back earlier pairs: sharpen the HR that came out, as Real-ESRGAN does.
                gt_usm = usm_sharpen(gt) if self._needs_usm() else gt
        batch.update(a=lq.contiguous(), b=gt, b_usm=gt_usm)
        return batch

    def _needs_usm(self) -> bool:
        cfg = self.cfg
        return cfg.l1_gt_usm or (cfg.uses_gan and (cfg.percep_gt_usm or cfg.gan_gt_usm))

    # --- training -----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {
            name: self.make_adam([p for p in net.parameters() if p.requires_grad], lr=self.cfg.lr, betas=betas)
            for name, net in self.networks.items()
        }

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lq, gt = batch["a"], batch["b"]
        gt_usm = batch.get("b_usm", gt)
        output = self.train_networks["G"](lq)
        pixel = cfg.lambda_pixel * pixel_loss(output, gt_usm if cfg.l1_gt_usm else gt, cfg.pixel_criterion)
        if not cfg.uses_gan:
            self.step(pixel, self.optimizers["G"])
            return {"pixel": pixel.detach()}

        # The generator first, through the frozen discriminator (unwrapped: DDP syncs no grads).
        D = self.networks["D"]
        set_requires_grad(D, False)
        adversarial = cfg.lambda_adv * generator_loss(D(output), cfg.gan_mode)
        total = pixel + adversarial
        losses = {"G_pixel": pixel.detach(), "G_adv": adversarial.detach()}
        if self.perceptual is not None:
            perceptual = cfg.lambda_perceptual * self.perceptual(output, gt_usm if cfg.percep_gt_usm else gt)
            total = total + perceptual
            losses["G_perceptual"] = perceptual.detach()
        self.step(total, self.optimizers["G"])

        # Then the discriminator on the same (detached) output.
        set_requires_grad(D, True)
        D_train = self.train_networks["D"]
        real = D_train(gt_usm if cfg.gan_gt_usm else gt)
        fake = D_train(output.detach())
        # BasicSR's GANLoss sums the real and fake terms; i2i's vanilla/lsgan loss is their mean.
        scale = 2.0 if cfg.gan_mode in ("vanilla", "lsgan") else 1.0
        loss_d = scale * discriminator_loss(real, fake, cfg.gan_mode)
        self.step(loss_d, self.optimizers["D"])
        # Real-ESRGAN's out_d_real / out_d_fake: the mean logits, to watch the balance.
        losses.update(
            D=loss_d.detach(), D_real_logit=real.detach().float().mean(), D_fake_logit=fake.detach().float().mean()
        )
        return losses

    # --- evaluation and export ----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        lr = batch["a"]
        images = {
            # Nearest upscaling shows the LR pixels at the output's size: LR | output | HR.
            "input": F.interpolate(lr, scale_factor=self.cfg.scale, mode="nearest"),
            "output": upscale(networks["G"], lr, self.cfg.scale).clamp(0.0, 1.0),
        }
        if "b" in batch:
            images["target"] = batch["b"]
        return images

    def validation_metrics(self, images: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR/SSIM/L1 against the HR (``scale`` border pixels cropped, RGB, as Real-ESRGAN's
        validation settings), or NIQE of the output when the validation images have no HR."""
        from i2i.metrics import image_metrics

        output = images["output"].float()
        if "target" not in images:
            assert self._niqe is not None, "built whenever validation images have no HR (val_lr_only)"
            # NIQE as SR papers report it: the Y channel, ``scale`` pixels of border cropped. A flat
            # output (an untrained generator's) has no natural statistics to fit: NaN, not a crash.
            try:
                return {"niqe": float(self._niqe(output, crop_border=self.cfg.scale).mean())}
            except np.linalg.LinAlgError:
                return {"niqe": float("nan")}
        target, b = images["target"].float(), self.cfg.scale
        if min(output.shape[-2:]) > 4 * b:
            output, target = output[..., b:-b, b:-b], target[..., b:-b, b:-b]
        return image_metrics(output, target)

    def exported_generators(self) -> dict[str, tuple[str, GeneratorInfo]]:
        spec = model_spec(self.networks["G"])
        info = GeneratorInfo(
            model=spec["name"], kwargs=spec["kwargs"], value_range=(0.0, 1.0), scale=self.cfg.scale, task="realesrgan",
            extra={"stage": self.cfg.stage},
        )
        return {"generator": ("G", info)}

    def extra_state(self) -> dict[str, Any]:
        """The training pair pool, so a resumed run draws the pairs an uninterrupted one would."""
        return {"pool": self.pool.state_dict()} if self.pool is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.pool is not None and "pool" in state:
            self.pool.load_state_dict(state["pool"])
