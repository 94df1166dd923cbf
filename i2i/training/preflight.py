"""Checks a run can start, made before anything is built or written (``i2i train --dry-run`` runs
exactly these after the config parsed)."""
from __future__ import annotations

from pathlib import Path

from i2i.config import RunConfig
from i2i.device import resolve_device, resolve_precision
from i2i.errors import ConfigError
from i2i.training.distributed import local_rank

__all__ = ["check_data_root", "check_run"]


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


def check_run(config: RunConfig) -> None:
    """Everything a run needs that the config alone cannot promise: its device and precision work
    here (:class:`~i2i.errors.DeviceError` naming ``train.device`` / ``train.precision``) and its
    data root exists. Starts nothing and writes nothing."""
    device = resolve_device(config.train.device, option="train.device", local_rank=local_rank())
    resolve_precision(config.train.precision, device, training=True, option="train.precision")
    check_data_root(config)
