"""i2i: image-to-image translation with pix2pix, CycleGAN and SRGAN.

The public API (``i2i.__all__``)::

    import i2i
    translator = i2i.load("x4")                       # any model the CLI accepts
    output = translator.translate_image(image)        # (H, W, C) uint8/uint16 RGB(A) in and out
    i2i.create_model("unet_256", base_channels=32)    # an architecture by name
    i2i.list_models()

Names are imported on first use, so ``import i2i`` (and ``i2i --help``) does not load torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "load": "i2i.api",
    "Translator": "i2i.inference.translator",
    "create_model": "i2i.models",
    "list_models": "i2i.models",
    "model_signature": "i2i.models",
    "register_model": "i2i.registry",
    "load_generator": "i2i.checkpoint",
    "save_generator": "i2i.checkpoint",
    "GeneratorInfo": "i2i.checkpoint",
    "read_image": "i2i.data.io",
    "write_image": "i2i.data.io",
    "Trainer": "i2i.trainer",
    "load_config": "i2i.trainer",  # the tasks must be registered to parse a config
    "I2IError": "i2i.errors",
    "UsageError": "i2i.errors",
    "ConfigError": "i2i.errors",
    "DeviceError": "i2i.errors",
    "DataError": "i2i.errors",
    "ModelError": "i2i.errors",
    "VideoError": "i2i.errors",
    "TrainingError": "i2i.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from i2i.api import load
    from i2i.checkpoint import GeneratorInfo, load_generator, save_generator
    from i2i.config import load_config
    from i2i.data.io import read_image, write_image
    from i2i.errors import (
        ConfigError,
        DataError,
        DeviceError,
        I2IError,
        ModelError,
        TrainingError,
        UsageError,
        VideoError,
    )
    from i2i.inference.translator import Translator
    from i2i.models import create_model, list_models, model_signature
    from i2i.registry import register_model
    from i2i.trainer import Trainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'i2i' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
