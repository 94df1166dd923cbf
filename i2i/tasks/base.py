"""The contract between a task (the algorithm) and what runs it (the mechanics).

A task owns its networks, losses and optimizers and implements :meth:`Task.train_step`, which does
its own updates through ``self.step(loss, optimizer)``. Whatever runs the task (the trainer, or a
fake in a test) implements :class:`~i2i.tasks.context.TrainingContext` and attaches it with
:meth:`Task.attach`; the task reaches it only through its own methods. The trainer places the
networks on the device, wraps them for DDP / ``torch.compile``, schedules learning rates, keeps EMA
copies, checkpoints, logs and validates. It never looks inside a network.

Every network a task builds comes from :func:`build_network`, the one place that gives networks
their initial weights (``init_type`` / ``init_gain`` from the task's config).
"""
from __future__ import annotations

import builtins
import contextlib
import difflib
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Protocol

import torch
from torch import nn

from i2i.config import check_choice
from i2i.data.datasets import SizedDataset
from i2i.errors import ConfigError, TrainingError
from i2i.layers import INIT_TYPES, init_weights
from i2i.losses import GAN_MODES
from i2i.models import create_model, list_models, model_signature
from i2i.tasks.context import TrainingContext

if TYPE_CHECKING:
    from i2i.checkpoint import GeneratorInfo
    from i2i.config import RunConfig, TaskConfig
    from i2i.data.augment import PairedAugment

__all__ = [
    "Task",
    "TrainingContext",
    "set_requires_grad",
    "network_arguments",
    "build_network",
    "build_networks",
    "check_network_section",
    "check_common_options",
]


def set_requires_grad(modules: list[nn.Module] | nn.Module, flag: bool) -> None:
    """Freeze or unfreeze parameters (a discriminator while its generator is updated)."""
    for module in modules if isinstance(modules, list) else [modules]:
        for p in module.parameters():
            p.requires_grad_(flag)


# --- networks -------------------------------------------------------------------------------------
def network_arguments(section: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The model name and keyword arguments of a ``generator``/``discriminator`` config section.

    The section's keys are merged over ``defaults`` when it names the default model (or none).
    """
    spec = dict(section)
    if spec.get("name", defaults["name"]) == defaults["name"]:
        spec = {**defaults, **spec}
    name = spec.pop("name")
    return name, spec


def build_network(
    section: Mapping[str, Any], defaults: Mapping[str, Any], *, init_type: str, init_gain: float, **fixed: Any
) -> nn.Module:
    """Create the registered model a config section names, with its initial weights.

    ``fixed`` are the arguments the task decides (channels, scale). The weights are initialised
    here, by :func:`i2i.layers.init_weights` with ``init_type`` and ``init_gain``, for every task.
    """
    name, kwargs = network_arguments(section, defaults)
    network = create_model(name, **kwargs, **fixed)
    return init_weights(network, init_type, init_gain)


def build_networks(
    parts: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]],
    *,
    init_type: str,
    init_gain: float,
) -> dict[str, nn.Module]:
    """Several networks ``{name: (section, defaults, fixed)}``: all created first, then each
    initialised in order, as pytorch-CycleGAN-and-pix2pix does for its four networks."""
    networks = {}
    for key, (section, defaults, fixed) in parts.items():
        name, kwargs = network_arguments(section, defaults)
        networks[key] = create_model(name, **kwargs, **fixed)
    for network in networks.values():
        init_weights(network, init_type, init_gain)
    return networks


def _type_problem(value: Any, default: Any) -> str:
    """Why ``value`` cannot stand where the model's default is ``default`` ('' when it can)."""
    if default is None or isinstance(default, (tuple, list, dict)):
        return ""
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return "" if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return "" if isinstance(value, str) else "a string"
    return ""


def check_network_section(
    where: str, section: Mapping[str, Any], defaults: Mapping[str, Any], *, fixed: Mapping[str, str]
) -> None:
    """Refuse a ``generator``/``discriminator`` section its model would reject, naming the key.

    ``fixed`` maps the arguments the task sets itself to the config key that sets them
    (``{"in_channels": "task.in_channels"}``). Raises :class:`ConfigError`.
    """
    name, kwargs = network_arguments(section, defaults)
    models = list_models()
    if not isinstance(name, str) or name not in models:
        close = difflib.get_close_matches(str(name), models, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}.name is {name!r}, not a registered model.{hint} Models: {', '.join(models)}.")
    accepted = model_signature(name)
    settable = [k for k in accepted if k not in fixed]
    for key, value in kwargs.items():
        if key in fixed:
            raise ConfigError(f"{where}.{key} is set by the task from {fixed[key]}; remove it from {where}.")
        if key not in accepted:
            close = difflib.get_close_matches(str(key), settable, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown config key {where}.{key}.{hint} Valid keys in {where} for model {name!r}: "
                f"{', '.join(['name', *settable])}. Remove the key or fix its spelling."
            )
        expected = _type_problem(value, accepted[key])
        if expected:
            raise ConfigError(f"{where}.{key} must be {expected} (default {accepted[key]!r}), got {value!r}.")


class CommonOptions(Protocol):
    """The task config fields of the GAN tasks (pix2pix, CycleGAN, SRGAN, Real-ESRGAN)."""

    @property
    def gan_mode(self) -> str: ...

    @property
    def init_type(self) -> str: ...


def check_common_options(config: CommonOptions) -> None:
    """The options pix2pix, CycleGAN and SRGAN share: ``gan_mode`` and ``init_type``."""
    check_choice("task.gan_mode", config.gan_mode, GAN_MODES)
    check_choice("task.init_type", config.init_type, INIT_TYPES)


# --- the task -------------------------------------------------------------------------------------
class Task:
    """Base class of pix2pix, CycleGAN and SRGAN.

    Subclasses set ``name`` and ``config_class``, build ``self.networks`` in ``__init__`` (through
    :func:`build_network`) and implement the methods below.

    ``self.networks`` holds the plain modules: their state is what checkpoints and exports hold,
    and forward passes that must not synchronise gradients use them (a frozen discriminator in the
    generator update). ``self.train_networks`` holds what the runner made of each network for
    training (a DDP or compiled wrapper, or the module itself): forward passes whose gradients
    train use them. ``self.optimizers`` are the task's own, built by :meth:`configure_optimizers`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    #: Networks whose exponential moving average the trainer keeps when ``train.ema_decay`` > 0.
    ema_networks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: "RunConfig") -> None:
        self.config = config
        self.networks: dict[str, nn.Module] = {}
        self.train_networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.augmentation: "PairedAugment | None" = None
        self._context: TrainingContext | None = None

    # --- set-up -------------------------------------------------------------------------------
    def build_dataset(self, split: str, *, train: bool) -> SizedDataset:
        """The data set of ``split`` for training (``train=True``) or validation."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name over ``self.networks`` (already on the device), from :meth:`make_adam`."""
        raise NotImplementedError

    def attach(self, context: TrainingContext, train_networks: Mapping[str, nn.Module] | None = None) -> None:
        """Connect the task to what runs it and build its optimizers.

        ``train_networks`` are the wrapped networks to train through (default: ``self.networks``).
        """
        self._context = context
        self.train_networks = dict(train_networks if train_networks is not None else self.networks)
        self.optimizers = self.configure_optimizers()

    # --- what the task asks of its context --------------------------------------------------
    @property
    def context(self) -> TrainingContext:
        if self._context is None:
            raise TrainingError(
                f"The {self.name} task is not attached to a training context yet; the trainer attaches it "
                "in setup_task() (a test can call task.attach(context))."
            )
        return self._context

    @property
    def device(self) -> torch.device:
        return self.context.device

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backpropagate ``loss``, step ``optimizer`` and clear its gradients (AMP and DDP included)."""
        self.context.step(loss, optimizer)

    def make_adam(self, params: Iterable[nn.Parameter], *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        return self.context.make_adam(params, lr=lr, betas=betas)

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.context.autocast()

    def log(self, values: Mapping[str, torch.Tensor | float]) -> None:
        self.context.log(values)

    def print(self, message: str) -> None:
        """Show ``message`` through the context, or on stdout when the task runs on its own."""
        if self._context is None:
            builtins.print(message, flush=True)
        else:
            self._context.print(message)

    # --- training -----------------------------------------------------------------------------
    def augment(self, batch: dict, *, train: bool) -> dict:
        """Device-side preprocessing of a batch already on the device.

        With ``self.augmentation`` (a :class:`~i2i.data.augment.PairedAugment`), training batches
        get its random crop, flip and jitter and evaluation batches its central crop.
        """
        if self.augmentation is not None:
            step = self.augmentation if train else self.augmentation.center
            batch["a"], batch["b"] = step(batch["a"], batch["b"])
        return batch

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``; returns detached scalar losses by name.

        The values stay tensors so the step needs no host-device synchronisation; the trainer
        turns them into floats when it logs.
        """
        raise NotImplementedError

    # --- evaluation and export ----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict, networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        """Images for grids and validation: a dict of (B, C, H, W) tensors in the value range.

        ``networks`` maps names to the modules to use (EMA copies when the trainer has them).
        Must contain ``"output"`` and ``"target"`` for validation metrics.
        """
        raise NotImplementedError

    def sample_rows(self) -> tuple[tuple[str, ...], ...]:
        """How sample grids are laid out: for each group, keys of :meth:`predict`'s result shown
        side by side, one row per image."""
        return (("input", "output", "target"),)

    def validation_metrics(self, images: dict[str, torch.Tensor]) -> dict[str, float]:
        """Metrics of one validation batch (``images`` from :meth:`predict`), averaged over the
        split by the trainer. The default compares ``output`` with ``target``: L1, PSNR, SSIM."""
        from i2i.imageops import to_unit_range
        from i2i.metrics import image_metrics

        rng = self.value_range
        return image_metrics(to_unit_range(images["output"], rng), to_unit_range(images["target"], rng))

    def validation_summary(self, gather) -> dict[str, float]:
        """Metrics of the whole split, computed after every batch went through
        :meth:`validation_metrics` (FID, say). ``gather(tensor)`` concatenates a tensor across
        DDP ranks along dim 0 (the identity on one process)."""
        return {}

    def exported_generators(self) -> dict[str, tuple[str, "GeneratorInfo"]]:
        """Files the run exports: ``{file stem: (network name, info)}``."""
        raise NotImplementedError

    @property
    def value_range(self) -> tuple[float, float]:
        return (-1.0, 1.0)

    def extra_state(self) -> dict[str, Any]:
        """Task state beyond networks and optimizers to checkpoint (an image pool, say)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


class SuperResolutionTask(Task):
    """What the super-resolution tasks (SRGAN, Real-ESRGAN) share: images in [0, 1] and a frozen
    perceptual loss (``self.perceptual``, None when the recipe has none) that follows the networks
    to the training device."""

    perceptual: nn.Module | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def attach(self, context: TrainingContext, train_networks: Mapping[str, nn.Module] | None = None) -> None:
        super().attach(context, train_networks)
        if self.perceptual is not None:
            self.perceptual.to(context.device)
