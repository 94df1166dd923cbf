"""Checks a run can start, made before anything is built or written (``i2i train --dry-run`` runs
exactly these after the config parsed)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from i2i.config import RunConfig
from i2i.device import resolve_device, resolve_precision
from i2i.errors import ConfigError
from i2i.shard import current_shard

__all__ = ["check_data_root", "check_weight_files", "check_inputs", "check_run"]


def check_data_root(config: RunConfig) -> None:
    """Raise :class:`ConfigError` unless ``data.root`` is an existing folder (a config value that
    points nowhere: fixed in the config, hence exit status 2 on the command line)."""
    root = config.data.root
    if not root:
        raise ConfigError("data.root is not set; point it at the data set's folder with --set data.root=PATH.")
    if not Path(root).is_dir():
        raise ConfigError(
            f"data.root {root!r} does not exist (or is not a folder); fix the path with --set data.root=PATH "
            "(`i2i data demo` or `i2i data download` make data sets)."
        )


def check_weight_files(config: RunConfig) -> None:
    """Raise :class:`ConfigError` unless every file the task section names (its ``*_weights``
    keys, e.g. ``task.vgg_weights``, ``task.fid_weights``) is a readable file, when set."""
    task = config.task
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        if not f.name.endswith("_weights") or not isinstance(value, str) or not value:
            continue
        where = f"task.{f.name}"
        if not Path(value).is_file():
            raise ConfigError(f"{where} {value!r} does not exist (or is not a file); fix it with --set {where}=PATH.")
        try:
            with open(value, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise ConfigError(f"{where} {value!r} cannot be read ({exc.strerror}); check its permissions.") from None
        if not os.access(value, os.R_OK):
            raise ConfigError(f"{where} {value!r} is not readable; check its permissions.")


def check_inputs(config: RunConfig) -> None:
    """The data root and every weights file the run reads, before any network is built."""
    check_data_root(config)
    check_weight_files(config)


def check_run(config: RunConfig) -> None:
    """Everything a run needs that the config alone cannot promise: its device and precision work
    here (:class:`~i2i.errors.DeviceError` naming ``train.device`` / ``train.precision``) and its
    data root and weights files exist. Starts nothing and writes nothing."""
    device = resolve_device(config.train.device, option="train.device", local_rank=current_shard().local_rank)
    resolve_precision(config.train.precision, device, training=True, option="train.precision")
    check_inputs(config)
