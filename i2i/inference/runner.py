"""The runner: a generator on one device, at one precision, over batches and tiles.

**Precision.** ``precision="auto"`` is fp16 autocast on CUDA and fp32 elsewhere
(:func:`i2i.device.resolve_precision` with ``training=False``; bf16 on a CPU that computes it
natively unless ``I2I_CPU_BF16=0``: :func:`cpu_prefers_bf16`); ``"bf16"``, ``"fp16"`` and ``"fp32"``
force one. When a half-precision output contains NaN or inf the batch is recomputed in
fp32, a warning is issued and fp32 is kept from then on. A model that declares it does not support
a half precision (``supports_half``/``supports_bfloat16`` False, e.g. spandrel's SwinIR) runs in
fp32 under ``auto`` and refuses that precision when it is asked for. The first fp32 output is
checked too (once, on the device): NaN or inf there is the model's own fault (weights of a run
that diverged, a damaged file), and :class:`~i2i.errors.ModelError` names ``Runner.source``
instead of writing black images.

**Batches and memory.** :meth:`Runner.run` sends a batch of same-size images whole or as tiles, as
the :class:`~i2i.inference.planner.MemoryPlanner` decides; an out-of-memory error asks the planner
for a smaller plan and retries the same batch.

**Normalisation mode.** ``norm_mode="eval"`` (the default) runs the generator in eval mode:
BatchNorm uses the running statistics stored in the file and dropout is off. ``"train"`` runs it as
pytorch-CycleGAN-and-pix2pix's ``test.py`` does without ``--eval`` (the pix2pix paper's test-time
behaviour): BatchNorm normalises with the statistics of the image itself and dropout stays on
(``seed`` makes its masks repeatable: the random state is reset to ``seed`` before every forward
pass, so an image gives the same output whatever was translated before it). The stored running
statistics are never updated (BatchNorm layers stop tracking them). Batch statistics depend on
what is in the batch, so train mode sends one whole image per forward pass: a batch size above 1
and tiles are refused, and an image too large for the device is an error instead of being tiled.

**Speed.** ``channels_last`` defaults to on; ``compile=True`` wraps the model in ``torch.compile``.
On the CPU the runner uses every core the process may run on and keeps freed host memory for reuse
(:mod:`i2i.host_memory`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from typing import cast

import numpy as np
import torch
from torch import nn

from i2i.device import cpu_features, resolve_precision
from i2i.errors import DeviceError, ModelError
from i2i.host_memory import keep_freed_host_memory
from i2i.imageops import pad_image, padded_size
from i2i.inference.adapter import ImageAdapter
from i2i.inference.planner import MIN_SIDE, InferenceMemoryError, MemoryPlanner, Plan
from i2i.inference.tiling import blend_tiles

__all__ = [
    "NORM_MODES", "Runner", "is_out_of_memory", "set_norm_mode", "supported_precision", "usable_cores", "use_cpu_cores",
]

#: How normalisation and dropout layers run: ``eval`` (stored statistics, no dropout) or ``train``.
NORM_MODES = ("eval", "train")

_HALF_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16"}
_DTYPES = {name: dtype for dtype, name in _HALF_NAMES.items()}
_SUPPORTS = {torch.float16: "supports_half", torch.bfloat16: "supports_bfloat16"}  # what a model may declare


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and host out-of-memory errors."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def use_cpu_cores(num_threads: int | None, host_memory_cache: bool) -> None:
    """Let torch use ``num_threads`` (default: every usable core) and, optionally, keep freed host memory."""
    threads = num_threads or usable_cores()
    if num_threads or torch.get_num_threads() < threads:
        torch.set_num_threads(threads)
    if host_memory_cache:
        keep_freed_host_memory()


@functools.lru_cache(maxsize=1)
def _native_bf16() -> bool:
    features = cpu_features()
    return bool(features["avx512_bf16"] or features["amx_bf16"])


def cpu_prefers_bf16() -> bool:
    """True when ``precision="auto"`` runs bf16 on this CPU: the CPU computes bf16 natively
    (AVX512-BF16 or AMX flags) and ``I2I_CPU_BF16=0`` does not turn it off. Measured on such a CPU
    (AVX512-BF16, no AMX), bf16 was 1.3-2x faster than fp32 for SR networks and stayed at 57.6 dB
    PSNR or more against fp32 on real photos (a few 8-bit levels apart at most), well above the
    40 dB the choice requires; without native bf16 it is slower, so fp32 stays."""
    return os.environ.get("I2I_CPU_BF16", "1").strip() != "0" and _native_bf16()


def supported_precision(model: nn.Module, precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` that ``model`` can run, None for fp32.

    A model may say it gives wrong results in half precision (``model.supports_half = False`` or
    ``supports_bfloat16 = False``, as spandrel reports for SwinIR, HAT, DAT ...): ``auto`` then
    runs it in fp32 and an explicit request raises :class:`~i2i.errors.DeviceError`.
    """
    dtype = resolve_precision(precision, device, training=False)
    if precision == "auto" and device.type == "cpu" and cpu_prefers_bf16():
        dtype = torch.bfloat16
    if dtype is None or getattr(model, _SUPPORTS[dtype], True):
        return dtype
    if precision == "auto":
        return None
    name = getattr(model, "name", None) or type(model).__name__
    other = "bf16" if dtype == torch.float16 else "fp16"
    alternatives = f"--precision fp32 or {other}" if getattr(model, _SUPPORTS[_DTYPES[other]], True) else "--precision fp32"
    raise DeviceError(f"--precision {precision}: {name} models do not support {precision}; use {alternatives} (or auto).")


def set_norm_mode(module: nn.Module, norm_mode: str) -> nn.Module:
    """Put ``module`` in eval or train mode for inference (see the module docstring).

    In train mode BatchNorm layers stop tracking running statistics, so a forward pass normalises
    with the batch's own statistics and leaves the stored ones untouched (eval mode still uses them).
    """
    if norm_mode not in NORM_MODES:
        raise ValueError(f"norm_mode must be one of {NORM_MODES}, got {norm_mode!r}")
    module.train(norm_mode == "train")
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = norm_mode == "eval"
    return module


class Runner:
    """``model`` on ``device`` in ``norm_mode`` (eval, or train: see the module docstring), run at
    ``precision``.

    ``module`` is the plain module (probes, copies, export); ``model`` is what runs (the compiled
    module when ``compile`` is set) and may be replaced, e.g. by a wrapper that records calls.
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: ImageAdapter,
        *,
        device: torch.device,
        scale: int = 1,
        precision: str = "auto",
        batch_size: int | None = None,
        channels_last: bool | None = None,
        compile: bool | str = False,
        norm_mode: str = "eval",
        seed: int | None = None,
    ) -> None:
        self.device = device
        self.norm_mode, self.seed = norm_mode, seed
        self.adapter = adapter
        self.scale = int(scale)
        self.size_multiple = int(getattr(model, "size_multiple", 1) or 1)
        self.amp_dtype: torch.dtype | None = supported_precision(model, precision, device)
        self.batch_size = batch_size or (4 if device.type == "cuda" else 1)
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        module = set_norm_mode(model, norm_mode).to(device)
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        module = module.to(memory_format=self.memory_format)  # both ways: a copied module may be channels-last
        self.module = module
        #: What the error about a broken model names: the model file when loaded from one.
        self.source = "the generator"
        self._fp32_checked = False
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            self.model: nn.Module = cast(nn.Module, torch.compile(module, backend=backend))
        else:
            self.model = module

    # ------------------------------------------------------------------ one forward pass

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def seeded(self) -> Iterator[None]:
        """With a ``seed``: the random state (dropout) reset to it, and the caller's restored after."""
        if self.seed is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            yield

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on a padded float32 batch on the device; returns float32 on the device."""
        # Both ways: the adapter's permute from (B, H, W, C) already gives channels-last strides.
        x = x.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), self.seeded():
            with self.autocast():
                y = self.model(x)
            y = y.float()
            if self.amp_dtype is not None and not bool(torch.isfinite(y).all()):
                warnings.warn(
                    f"{_HALF_NAMES[self.amp_dtype]} inference produced NaN or inf values; switching to fp32 for "
                    "this and every following image (use --precision fp32 to start in fp32).",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.amp_dtype = None
                y = self.model(x).float()
            if self.amp_dtype is None and not self._fp32_checked:
                self._check_finite(y)
        expected = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        if tuple(y.shape[-2:]) != expected:
            raise ModelError(
                f"the generator returned {y.shape[-2]}x{y.shape[-1]} for a {x.shape[-2]}x{x.shape[-1]} input, "
                f"but its description says scale {self.scale} ({expected[0]}x{expected[1]}); the generator "
                "file's scale is wrong"
            )
        return y

    def _check_finite(self, y: torch.Tensor) -> None:
        """Raise ModelError when an fp32 output holds NaN or inf; checked once per runner."""
        if not bool(torch.isfinite(y).all()):
            raise ModelError(
                f"{self.source} produces NaN/inf values even in fp32: its weights are broken (a training run "
                "that diverged, or a damaged file); nothing was written. Use another model file, or export "
                "the generator again from an earlier, healthy checkpoint."
            )
        self._fp32_checked = True

    def peak_bytes(self, side: int) -> int:
        """Device memory a forward pass of one ``side`` x ``side`` input uses.

        On CUDA the peak allocation of a probe pass is measured; elsewhere it is the sum of every
        layer's output size, an upper bound since most intermediate tensors are freed early.
        """
        # A generator that runs outside torch (ONNX Runtime) names the torch network to measure.
        probe = getattr(self.module, "memory_probe", None)
        module = self.module if probe is None else probe
        x = torch.zeros(1, self.adapter.in_channels, side, side, device=self.device)
        x = x.contiguous(memory_format=self.memory_format)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            with torch.inference_mode(), self.autocast():
                module(x)
            return torch.cuda.max_memory_allocated(self.device) - base
        total = [0]

        def count(_module: nn.Module, _inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                total[0] += output.numel() * output.element_size()

        leaves = [m for m in module.modules() if not list(m.children())]
        handles = [m.register_forward_hook(count) for m in leaves]
        try:
            with torch.inference_mode(), self.autocast():
                module(x)
        finally:
            for handle in handles:
                handle.remove()
        return total[0]

    # ------------------------------------------------------------------ batches

    def run(self, batch: np.ndarray, planner: MemoryPlanner) -> np.ndarray:
        """``(B, H, W, C_in)`` uint8/uint16 -> ``(B, sH, sW, C_out)`` of the same dtype.

        Whole or in tiles as ``planner`` decides; after an out-of-memory error the planner lowers
        the batch or the tile size and the same batch is tried again.
        """
        b, h, w = batch.shape[:3]
        hp, wp = (padded_size(side, self.size_multiple, MIN_SIDE) for side in (h, w))
        while True:
            plan = planner.plan(b, hp, wp)
            try:
                if plan.tile is None:
                    parts = [self.run_whole(batch[i : i + plan.per_step]) for i in range(0, b, plan.per_step)]
                    return parts[0] if len(parts) == 1 else np.concatenate(parts)
                if b == 1:  # no stacking copy of what may be a very large output
                    return self.run_tiled(batch[0], plan)[None]
                return np.stack([self.run_tiled(image, plan) for image in batch])
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                if self.norm_mode == "train":
                    raise InferenceMemoryError(
                        f"a {w}x{h} image does not fit on {self.device} in one piece, and --norm-mode train "
                        "normalises each whole image with its own statistics, so it cannot be tiled; use "
                        "--norm-mode eval (tiles allowed), a smaller image, or a device with more memory"
                    ) from exc
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                planner.shrink(plan, hp, wp)

    @torch.inference_mode()
    def run_whole(self, batch: np.ndarray) -> np.ndarray:
        """Same-size images in one pass."""
        h, w = batch.shape[1:3]
        x = self.adapter.to_device(pad_image(batch, self.size_multiple, MIN_SIDE), self.device)
        y = self.forward(x)[..., : h * self.scale, : w * self.scale]
        return self.adapter.to_levels(y, batch.dtype)

    @torch.inference_mode()
    def run_tiled(self, image: np.ndarray, plan: Plan) -> np.ndarray:
        """One ``(H, W, C)`` image through tiles; the frame and the blend stay on the host."""
        assert plan.tile is not None
        return blend_tiles(
            pad_image(image, self.size_multiple, MIN_SIDE),
            image.shape[:2],
            tile=plan.tile,
            overlap=plan.overlap,
            multiple=self.size_multiple,
            scale=self.scale,
            per_step=plan.per_step,
            forward=lambda tiles: self.forward(self.adapter.to_device(tiles, self.device)).cpu(),
            to_levels=lambda rows: self.adapter.to_levels(rows[None], image.dtype)[0],
        )
