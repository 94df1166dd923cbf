"""Shared fixtures: a small real paired data set and a tiny pix2pix config."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
# Tests compare outputs with fp32 references to a level or exactly: keep `--precision auto` fp32 on
# CPUs with native bf16 too (subprocesses inherit it). tests/test_cpu_levers.py turns it on.
os.environ["I2I_CPU_BF16"] = "0"

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def run_cli(*args: object, code: int = 0):
    """Run the ``i2i`` command line in-process with ``args`` and check its exit status."""
    from click.testing import CliRunner

    from i2i.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


def package_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """Real photo pairs (edges2photo, gray2color) at 64x64 in the aligned A|B layout."""
    from i2i.data.demo import make_paired_demo

    return make_paired_demo(tmp_path_factory.mktemp("demo"), size=64, crops_per_photo=2, seed=0)


def tiny_pix2pix(root: Path, out: Path, **train) -> dict:
    """A raw config for a pix2pix small enough to train in seconds on the CPU."""
    return {
        "task": {
            "name": "pix2pix",
            "generator": {"name": "unet", "num_downs": 5, "base_channels": 8, "norm": "batch", "dropout": True},
            "discriminator": {"name": "patchgan", "base_channels": 8, "n_layers": 2, "norm": "batch"},
            "lr": 0.001,
        },
        "data": {
            "root": str(root),
            "preprocess": "resize_and_crop",
            "load_size": 40,
            "crop_size": 32,
            "batch_size": 4,
            "num_workers": 0,
            "val_items": 4,
        },
        "schedule": {"policy": "linear", "unit": "step", "n_epochs": 1000, "n_epochs_decay": 1000},
        "train": {
            "output_dir": str(out),
            "name": "run",
            "log_every": 2,
            "sample_every": 1000,
            "val_every": 1000,
            "checkpoint_every": 1000,
            **train,
        },
        "seed": 0,
    }
