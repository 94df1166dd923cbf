"""The one-call entry point of the Python API: :func:`load`."""
from __future__ import annotations

import os
from typing import Any

from i2i.device import resolve_device
from i2i.inference.translator import Translator

__all__ = ["load"]


def load(model: str | os.PathLike[str], *, direction: str | None = None, device: str = "auto", **options: Any) -> Translator:
    """A :class:`~i2i.inference.translator.Translator` for any model the command line accepts.

    Args:
        model: an i2i generator file (``.safetensors``), a training run folder, a bundled name
            (``"x4"``), or a foreign checkpoint (pytorch-CycleGAN-and-pix2pix ``*_net_G.pth``,
            BasicSR, leftthomas/SRGAN) -- the same specs as ``i2i translate --model``.
        direction: ``"AtoB"`` or ``"BtoA"``, to choose a generator of a two-way (CycleGAN) run.
        device: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        options: the translator's options (``tile``, ``tile_overlap``, ``batch_size``,
            ``precision``, ``channels_last``, ``compile``), as in the command line.

    Raises:
        ModelError: the model cannot be found or read. DeviceError: the device is not available.

    Example::

        import i2i
        upscaler = i2i.load("x4", device="cpu")
        big = upscaler.translate_image(i2i.read_image("photo.png"))
    """
    return Translator.from_file(model, direction=direction, device=resolve_device(device, option="device"), **options)
