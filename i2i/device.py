"""Device and precision resolution, shared by training, inference and evaluation.

Errors name the option the user typed (``--device`` on the command line, ``train.device`` in a
config), so the same check teaches the right fix in every command.
"""
from __future__ import annotations

import torch

from i2i.errors import DeviceError

__all__ = ["PRECISIONS", "resolve_device", "resolve_precision", "mps_available"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def mps_available() -> bool:
    """True where Apple's Metal backend can run tensors."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str, *, option: str = "--device", local_rank: int = 0) -> torch.device:
    """The device ``spec`` names: ``auto`` (CUDA when available, the local rank's GPU under
    torchrun; else Apple's MPS on Apple silicon; else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``mps``.

    Raises :class:`~i2i.errors.DeviceError` naming ``option`` when the device does not exist or is
    not available here.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    if text == "cuda":
        text = f"cuda:{local_rank}"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(
            f"{option} {spec!r} is not a device; use auto, cpu, cuda, cuda:N (a GPU number) or mps."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{option} {spec!r} needs CUDA, which is not available here; use {option} cpu.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"{option} {spec!r}: this machine has {count} CUDA device(s), numbered 0 to {count - 1}."
            )
    elif device.type == "mps":
        if not mps_available():
            raise DeviceError(f"{option} {spec!r}: Apple's MPS backend is not available here; use {option} cpu.")
    elif device.type != "cpu":
        raise DeviceError(f"{option} {spec!r} is not supported; use auto, cpu, cuda, cuda:N or mps.")
    return device


def resolve_precision(spec: str, device: torch.device, *, training: bool, option: str = "--precision") -> torch.dtype | None:
    """The autocast dtype for ``spec`` on ``device``, or None for plain fp32.

    ``auto`` is fp32 off CUDA (inference on a CPU with native bf16 takes bf16 instead: see
    :func:`i2i.inference.runner.cpu_prefers_bf16`). On CUDA it differs by purpose, on purpose: training takes bf16
    (fp16 where the GPU lacks bf16), whose fp32-sized exponent keeps losses and gradients from
    overflowing without loss scaling; inference takes fp16, whose 10-bit mantissa resolves every
    8-bit output level where bf16's 7 bits band smooth gradients, and a NaN/inf output falls back
    to fp32.
    """
    if spec not in PRECISIONS:
        raise DeviceError(f"{option} {spec!r} is not a precision; use one of {', '.join(PRECISIONS)}.")
    if spec != "auto":
        return _DTYPES[spec]
    if device.type != "cuda":
        return None
    if training:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16


def cpu_features() -> dict[str, bool | str]:
    """What this CPU offers for bf16: the ``avx512_bf16``, ``amx_bf16`` and ``amx_tile`` flags of
    ``/proc/cpuinfo`` (False where it cannot be read, e.g. off Linux) and torch's kernel level
    ``capability`` (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512 ...)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo if line.startswith("flags")), set())
    except OSError:
        pass
    features: dict[str, bool | str] = {name: name in flags for name in ("avx512_bf16", "amx_bf16", "amx_tile")}
    features["capability"] = torch.backends.cpu.get_cpu_capability()
    return features
