"""Run configuration: YAML -> frozen dataclasses -> explicit keyword arguments.

A run config has five sections: ``task`` (the recipe and its hyperparameters; its type depends on
``task.name``), ``data``, ``train``, ``schedule`` and ``seed``. Unknown keys raise
:class:`ConfigError` listing the valid ones, and ``--set a.b=c`` overrides any key.

The ``task`` section's class comes from a small registry: each task module calls
:func:`register_task` with its :class:`TaskConfig` subclass when it is imported. This module never
imports the tasks; the entry points that parse run configs (the trainer, ``i2i train``) import
:mod:`i2i.tasks` first, which fills the table.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import yaml

from i2i.errors import ConfigError

__all__ = [
    "ConfigError",
    "TaskConfig",
    "register_task",
    "registered_tasks",
    "task_config_class",
    "check_choice",
    "upgrade_saved_config",
    "DataConfig",
    "TrainConfig",
    "ScheduleConfig",
    "RunConfig",
    "load_config",
    "parse_config",
    "apply_overrides",
    "config_to_dict",
    "dump_config",
    "PREPROCESS_MODES",
    "SCHEDULE_POLICIES",
]

SCHEDULE_POLICIES = ("linear", "step", "multistep", "cosine", "constant")
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


@dataclass(frozen=True)
class TaskConfig:
    """The ``task`` section: the base of every task's hyperparameters.

    A task's subclass adds its fields (``name`` keeps its place first) and overrides
    :meth:`validate` for checks beyond types: choices, model arguments, combinations.
    ``renamed_keys`` maps keys an older i2i accepted to their new names: a config that still uses
    one is refused with the new name, and :meth:`upgrade_saved` rewrites them in configs stored in
    older checkpoints, so old runs resume.
    """

    name: str = ""
    renamed_keys: ClassVar[Mapping[str, str]] = {}

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first key whose value cannot work."""

    @classmethod
    def upgrade_saved(cls, raw: dict) -> dict:
        """A raw ``task`` section from an older checkpoint, with renamed keys mapped."""
        return raw


_TASK_CONFIGS: dict[str, type[TaskConfig]] = {}


def register_task(name: str, config_class: type[TaskConfig]) -> None:
    """Make ``task.name: <name>`` parse into ``config_class``; task modules call this on import."""
    if _TASK_CONFIGS.get(name, config_class) is not config_class:
        raise RuntimeError(f"task {name!r} is registered twice")
    _TASK_CONFIGS[name] = config_class


def registered_tasks() -> list[str]:
    """Task names in registration order (import :mod:`i2i.tasks` for the built-in ones)."""
    return list(_TASK_CONFIGS)


def task_config_class(name: Any) -> type[TaskConfig]:
    """The config class of the task ``name``; unknown names list the registered ones."""
    if not _TASK_CONFIGS:
        # A program bug, not a user mistake: the entry point forgot the import that fills the table.
        raise RuntimeError("No tasks are registered; import i2i.tasks before parsing a run config.")
    check_choice("task.name", name, tuple(_TASK_CONFIGS))
    return _TASK_CONFIGS[name]


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they reach the network.

    ``layout``: ``aligned`` (pix2pix ``A|B`` side-by-side images in ``root/<split>/``), ``folders``
    (``root/A/<split>/`` and ``root/B/<split>/`` matched by file name) or ``auto`` (detect).
    ``preprocess`` follows pytorch-CycleGAN-and-pix2pix: resizing happens in the loader, the random
    crop and flip run batched on the training device.
    """

    root: str = ""
    layout: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    direction: str = "AtoB"
    preprocess: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    color_jitter: float = 0.0
    batch_size: int = 1
    num_workers: int = 4
    max_items: int = 0
    val_items: int = 16


@dataclass(frozen=True)
class TrainConfig:
    """Mechanics of the common loop; nothing here knows about generators or discriminators."""

    output_dir: str = "runs"
    name: str = ""
    epochs: int = 0
    max_steps: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    fused_optimizer: bool = True
    host_memory_cache: bool = True
    sync_batchnorm: bool = False
    ema_decay: float = 0.0
    log_every: int = 10
    sample_every: int = 200
    val_every: int = 500
    checkpoint_every: int = 1000
    keep_last: int = 3
    deterministic: bool = False
    # TensorBoard scalars in RUN/tb when the tensorboard package is installed (the [tensorboard]
    # extra); without it the run says so once and goes on: metrics.jsonl and the run page have
    # every number.
    tensorboard: bool = True
    # Weights & Biases (optional extra i2i-toolkit[wandb]); the run name defaults to the run folder's.
    wandb: bool = False
    wandb_project: str = "i2i"
    wandb_name: str = ""


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per training step.

    ``linear`` is the pix2pix/CycleGAN paper schedule: constant for ``n_epochs`` then linear decay
    to zero over ``n_epochs_decay``. ``step`` multiplies by ``gamma`` every ``step_size``;
    ``multistep`` multiplies by ``gamma`` at each of ``milestones`` (PyTorch's and BasicSR's
    ``MultiStepLR``, as the Real-ESRGAN recipes use); ``cosine`` anneals to zero over the whole run;
    ``constant`` never changes. ``unit`` says whether ``n_epochs``, ``n_epochs_decay``,
    ``step_size`` and ``milestones`` count epochs or steps.
    """

    policy: str = "linear"
    unit: str = "epoch"
    n_epochs: int = 100
    n_epochs_decay: int = 100
    step_size: int = 50
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    task: TaskConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    seed: int = 0


def check_choice(name: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``valid``, naming the key ``name``."""
    if value not in valid:
        close = difflib.get_close_matches(str(value), list(valid), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{name} is {value!r}; expected one of {', '.join(valid)}.{hint}")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return tuple(_coerce(v, item_type, where) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if annotation is str:
        if value is None:  # `key:` with nothing after it in YAML
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return str(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build the frozen dataclass ``cls`` from a mapping; unknown keys raise and list valid ones."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping of keys, got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        prefix = f"{where}." if where else ""
        renamed = getattr(cls, "renamed_keys", {})
        if key in renamed:
            raise ConfigError(
                f"{prefix}{key} is now called {prefix}{renamed[key]}; rename it in the config "
                f"(or use --set {prefix}{renamed[key]}=VALUE)."
            )
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown config key {prefix}{key}.{hint} Valid keys{' in ' + where if where else ''}: "
            f"{', '.join(fields)}."
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def config_to_dict(config: Any) -> dict:
    """A plain, YAML-ready dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``a.b=c`` overrides to a raw config dict; values are parsed as YAML."""
    raw = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not of the form key=value, e.g. train.max_steps=100.")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"Override {item!r} has an empty key.")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"Override {item!r}: {part!r} is a value, not a section.")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def parse_config(raw: Mapping) -> RunConfig:
    """Validate a raw dict into a :class:`RunConfig` (the task's class from the task registry)."""
    raw = dict(raw or {})
    task_raw = raw.get("task")
    if isinstance(task_raw, str):
        task_raw = {"name": task_raw}
    if not isinstance(task_raw, Mapping) or "name" not in task_raw:
        raise ConfigError(f"The config needs a task section with a name, one of: {', '.join(registered_tasks())}.")
    task_config_cls = task_config_class(task_raw["name"])
    unknown = [k for k in raw if k not in ("task", "data", "train", "schedule", "seed")]
    if unknown:
        raise ConfigError(
            f"Unknown config key {unknown[0]}. Valid top-level keys: task, data, train, schedule, seed."
        )
    config = RunConfig(
        task=from_dict(task_config_cls, task_raw, "task"),
        data=from_dict(DataConfig, raw.get("data"), "data"),
        train=from_dict(TrainConfig, raw.get("train"), "train"),
        schedule=from_dict(ScheduleConfig, raw.get("schedule"), "schedule"),
        seed=_coerce(raw.get("seed", 0), int, "seed"),
    )
    validate(config)
    return config


def upgrade_saved_config(raw: Mapping) -> dict:
    """A raw run config stored by an older i2i, with the task's renamed keys mapped to today's.

    Only configs read back from checkpoints go through this; a YAML file with an old key is
    refused with the new name instead.
    """
    raw = dict(raw or {})
    task_raw = raw.get("task")
    if isinstance(task_raw, Mapping) and task_raw.get("name") in _TASK_CONFIGS:
        raw["task"] = _TASK_CONFIGS[task_raw["name"]].upgrade_saved(dict(task_raw))
    return raw


def _check_milestones(s: ScheduleConfig) -> None:
    if s.policy != "multistep":
        return
    milestones = list(s.milestones)
    if not milestones or milestones != sorted(set(milestones)) or milestones[0] < 1:
        raise ConfigError(
            f"schedule.milestones is {milestones}; the multistep policy needs increasing positive "
            f"{s.unit} counts, e.g. schedule.milestones=[200000, 400000]."
        )


# The smallest value of each integer key; an interval of 0 would divide by zero mid-run.
_MINIMA = {
    "data": {"load_size": 1, "crop_size": 1, "batch_size": 1, "num_workers": 0, "max_items": 0, "val_items": 0},
    "train": {
        "epochs": 0, "max_steps": 0, "log_every": 1, "sample_every": 1, "val_every": 1,
        "checkpoint_every": 1, "keep_last": 0,
    },
    "schedule": {"n_epochs": 0, "n_epochs_decay": 0, "step_size": 1},
}
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_MODEL_SIZE_KEYS = ("channels", "num_blocks", "num_downs", "n_layers", "num_feat", "num_grow_ch", "num_block")


def _check_ranges(config: RunConfig) -> None:
    """Refuse integers outside their range, naming the key, the value and the range."""
    for section_name, minima in _MINIMA.items():
        values = getattr(config, section_name)
        for key, low in minima.items():
            value = getattr(values, key)
            if value < low:
                raise ConfigError(f"{section_name}.{key} is {value}; it must be an integer >= {low}.")
    if not 0.0 <= config.data.color_jitter:
        raise ConfigError(f"data.color_jitter is {config.data.color_jitter}; it must be >= 0.")
    if not config.schedule.gamma > 0:
        raise ConfigError(f"schedule.gamma is {config.schedule.gamma}; it must be a number > 0.")
    if not _DEVICE_PATTERN.match(str(config.train.device).strip().lower()):
        raise ConfigError(
            f"train.device is {config.train.device!r}; expected one of auto, cpu, cuda, cuda:N (a GPU number), mps."
        )
    task = config.task
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        sections: dict[str, Mapping[str, Any]] = {f"task.{f.name}": value} if isinstance(value, Mapping) else {}
        if f.name.endswith("channels") and isinstance(value, int) and value < 1:
            raise ConfigError(f"task.{f.name} is {value}; it must be an integer >= 1.")
        for section_name, section in sections.items():
            for key, item in section.items():
                if isinstance(item, int) and not isinstance(item, bool) and key.endswith(_MODEL_SIZE_KEYS):
                    low = 0 if key == "n_layers" else 1
                    if item < low:
                        raise ConfigError(f"{section_name}.{key} is {item}; it must be an integer >= {low}.")


def validate(config: RunConfig) -> None:
    d, t, s = config.data, config.train, config.schedule
    check_choice("data.layout", d.layout, ("auto", "aligned", "folders"))
    check_choice("data.direction", d.direction, ("AtoB", "BtoA"))
    check_choice("data.preprocess", d.preprocess, PREPROCESS_MODES)
    check_choice("train.precision", t.precision, ("auto", "fp32", "bf16", "fp16"))
    check_choice("schedule.policy", s.policy, SCHEDULE_POLICIES)
    check_choice("schedule.unit", s.unit, ("epoch", "step"))
    if d.batch_size < 1:
        raise ConfigError(f"data.batch_size is {d.batch_size}; it must be at least 1.")
    if d.crop_size > d.load_size and d.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        raise ConfigError(
            f"data.crop_size ({d.crop_size}) is larger than data.load_size ({d.load_size}); "
            "set load_size >= crop_size."
        )
    _check_milestones(s)
    _check_ranges(config)
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay is {t.ema_decay}; use 0 (off) or a value in (0, 1) such as 0.999.")
    if t.epochs == 0 and t.max_steps == 0 and s.policy != "linear":
        raise ConfigError("Set train.epochs or train.max_steps: only the linear schedule implies a length.")
    config.task.validate()


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config, apply ``key=value`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist. The configs/ folder has examples.")
    try:
        raw = _safe_load_bounded(path.read_text(), str(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from None
    return parse_config(apply_overrides(raw, overrides))


YAML_NODE_LIMIT = 100_000  # a run config has a few hundred nodes; aliases must not multiply them


def _safe_load_bounded(text: str, name: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand past :data:`YAML_NODE_LIMIT`
    nodes (a "billion laughs" bomb) or refer to themselves, before anything is expanded."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        if _expanded_size(node, sizes, set()) > YAML_NODE_LIMIT:
            raise ConfigError(
                f"Config file {name!r} expands to more than {YAML_NODE_LIMIT} values through YAML "
                "aliases (*name); write the values out instead."
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """How many nodes ``node`` becomes once every alias is copied out (memoised, so it is cheap)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise ConfigError("A YAML alias refers to the value that contains it; a config cannot be recursive.")
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, sizes, active)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, sizes, active) + _expanded_size(v, sizes, active)
    active.discard(key)
    sizes[key] = min(total, YAML_NODE_LIMIT + 1)
    return sizes[key]
