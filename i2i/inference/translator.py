"""Run a generator on images of any size, channel count and bit depth.

**Size.** The image is padded by reflection (repeated for tiny images) to the generator's size
multiple (``model.size_multiple``, e.g. ``2**num_downs`` for a U-Net) and the output is cropped back,
so the output is exactly ``scale`` x the input (``scale`` is 1 for translation, 2/4/... for SR).

**Tiles.** Images that do not fit on the device are cut into overlapping tiles that go to the
device a few at a time; the full frame stays in host memory and the tile outputs are blended with
feathered weights (:mod:`i2i.inference.tiling`). ``tile=None`` tiles only when the whole image
would not fit (CUDA: 80% of ``torch.cuda.mem_get_info``; CPU: half the available RAM, at most
8 GiB) and then picks the tile size from free memory (CPU: a quarter of the RAM, at most 1 GiB);
``tile=0`` never tiles; ``tile=N`` always uses N-pixel tiles (in input pixels). An out-of-memory
error halves the batch, then the tile size, and retries the same image, with a warning; the
smaller size is kept for the following images.

**Batches.** :meth:`Translator.translate_images` sends images of the same size together, up to
``batch_size`` at a time (tiles of one image are batched the same way); the default is 4 on CUDA
and 1 on the CPU (measured faster there: a batch only adds cache misses).

**Precision.** ``precision="auto"`` is fp16 autocast on CUDA and fp32 on the CPU; ``"bf16"``,
``"fp16"`` and ``"fp32"`` force one. When a half-precision output contains NaN or inf the batch
is recomputed in fp32, a warning is issued and fp32 is kept from then on. ``channels_last``
defaults to on for CUDA; ``compile=True`` wraps the model in ``torch.compile``. On the CPU the
translator uses every core the process may run on.

**Channels.** The image's colour part is converted to the generator's input channels (gray is
repeated to RGB for a 3-channel generator, RGB becomes BT.601 luma for a 1-channel one); the output
has the generator's output channels, so a 1-channel generator gives gray out. Alpha (RGBA, or gray
+ alpha) is split off, carried through untouched and, for SR, resized to the output with bilinear
interpolation (:func:`~i2i.imageops.merge_alpha`). uint16 in gives uint16 out (all 16 bits go
through the network as floats).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.imageops import MAX_VALUE, convert_channels, merge_alpha, pad_image, pad_to_multiple, padded_size, round_up, split_alpha
from i2i.host_memory import keep_freed_host_memory, kept_free_bytes
from i2i.inference.tiling import RowBlender, feather_ramp, tile_starts

__all__ = ["Translator", "PRECISIONS", "is_out_of_memory", "available_host_memory"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_MIN_TILE = 32  # below this the overlap dominates; an OOM at this size is reported, not retried
_CPU_BUDGET_CAP = 1 << 30  # bytes for tiles on the CPU
_CPU_WHOLE_CAP = 8 << 30  # bytes a whole image may take on the CPU before it is tiled
_MIN_SIDE = 8  # images are padded to at least this, so a ResNet's 1/4-size feature maps are 2 pixels


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and host out-of-memory errors."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


def available_host_memory() -> int:
    """Bytes of RAM available to new allocations: the kernel's ``MemAvailable`` plus what this
    process keeps freed for reuse (:mod:`i2i.host_memory`); 4 GiB when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 + kept_free_bytes()
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image array (H, W, C), got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image (H, W) or (H, W, C) with C in 1-4, got shape {tuple(image.shape)}")
    if image.dtype not in MAX_VALUE:
        raise ValueError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty, shape {tuple(image.shape)}")
    return image


class Translator:
    """A generator ready for inference on ``device``.

    Args:
        model: any ``nn.Module`` mapping ``(B, C_in, H, W)`` to ``(B, C_out, scale*H, scale*W)`` in
            ``info.value_range``; ``model.size_multiple`` (default 1) is the size it needs.
        info: what the generator is (value range, scale, channels in ``info.kwargs``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        tile: tile size in input pixels; None chooses from free memory when needed, 0 never tiles.
        tile_overlap: overlap between neighbouring tiles in input pixels (at most ``tile / 2``).
        batch_size: images (or tiles) sent to the device together (default: 4 on CUDA, 1 on the CPU,
            where larger batches only add cache misses).
        precision: ``auto`` (fp16 on CUDA, fp32 on CPU), ``fp32``, ``fp16`` or ``bf16``.
        channels_last: use the channels-last memory format (default: on; on the CPU, with the host
            memory cache, it is as fast or faster for every architecture measured, up to 1.9x for
            SR networks; docs/benchmarks.md).
        host_memory_cache: on the CPU, keep freed host memory for reuse (see
            :mod:`i2i.host_memory`; about 2x for the bundled x4 model on two cores).
        compile: ``torch.compile`` the model (True, or a backend name such as ``"inductor"``).
        num_threads: CPU threads for torch (default: every usable core).
        memory_budget: bytes the automatic tile size may use (default: from free memory).
    """

    def __init__(
        self,
        model: nn.Module,
        info: GeneratorInfo,
        *,
        device: str | torch.device = "cpu",
        tile: int | None = None,
        tile_overlap: int = 32,
        batch_size: int | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool | str = False,
        num_threads: int | None = None,
        memory_budget: int | None = None,
        host_memory_cache: bool = True,
    ) -> None:
        if tile is not None and tile < 0:
            raise ValueError(f"tile must be a positive size in pixels, 0 (never tile) or None (automatic), got {tile}")
        if tile_overlap < 0:
            raise ValueError(f"tile_overlap must be >= 0 pixels, got {tile_overlap}")
        if tile and tile_overlap * 2 > tile:
            raise ValueError(
                f"tile_overlap {tile_overlap} is more than half the tile size {tile}; "
                f"use a larger --tile or an overlap of at most {tile // 2}"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} needs CUDA, which is not available here; use --device cpu")
        if self.device.type == "cpu":
            threads = num_threads or usable_cores()
            if num_threads or torch.get_num_threads() < threads:
                torch.set_num_threads(threads)
            if host_memory_cache:
                keep_freed_host_memory()

        self.info = info
        self.options = dict(
            tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, precision=precision,
            channels_last=channels_last, compile=compile, num_threads=num_threads, memory_budget=memory_budget,
            host_memory_cache=host_memory_cache,
        )
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.batch_size = batch_size or (4 if self.device.type == "cuda" else 1)
        self.precision = precision
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.memory_budget = memory_budget
        self.in_channels = int(info.kwargs.get("in_channels", 3))
        self.out_channels = int(info.kwargs.get("out_channels", 3))
        self.size_multiple = int(getattr(model, "size_multiple", 1) or 1)
        self.scale = int(info.scale)
        self.value_range = (float(info.value_range[0]), float(info.value_range[1]))

        module = model.eval().to(self.device)
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module  # the plain module (hooks, copies, export)
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            self.model: nn.Module = torch.compile(module, backend=backend)
        else:
            self.model = module

        if precision == "auto":
            self.amp_dtype: torch.dtype | None = torch.float16 if self.device.type == "cuda" else None
        else:
            self.amp_dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        # State learnt while running: lowered after out-of-memory errors, measured once.
        self._tile_cap: int | None = None
        self._batch_cap: int | None = None
        self._bytes_per_pixel: float | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_file(
        cls, path: str | Path, *, direction: str | None = None, device: str | torch.device = "cpu", **options
    ) -> "Translator":
        """Load a generator file, run folder or foreign checkpoint (see :func:`load_generator`)."""
        model, info = load_generator(path, direction=direction)
        return cls(model, info, device=device, **options)

    def to_device(self, device: str | torch.device) -> "Translator":
        """A copy of this translator (same options, its own model copy) on another device."""
        module = copy.deepcopy(self.module).to("cpu")
        return Translator(module, self.info, device=device, **self.options)

    # ------------------------------------------------------------------ public API

    def translate_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` uint8/uint16 RGB(A) or gray -> the translated image, same dtype.

        The output is ``(scale*H, scale*W, C_out)`` (``C_out + 1`` with alpha); see the module
        docstring for the channel rules.
        """
        return self.translate_images([image])[0]

    def translate_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate several images; those of the same size and dtype go to the device together."""
        prepared = [self._prepare(image) for image in images]
        results: list[np.ndarray | None] = [None] * len(prepared)
        groups: dict[tuple, list[int]] = {}
        for index, (colour, _) in enumerate(prepared):
            groups.setdefault((colour.shape, colour.dtype.str), []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = np.stack([prepared[i][0] for i in chunk])
                outputs = self.translate_array(batch)
                for i, output in zip(chunk, outputs):
                    results[i] = self._finish(output, prepared[i][1])
        return results  # type: ignore[return-value]

    def translate_array(self, batch: np.ndarray) -> np.ndarray:
        """``(B, H, W, C_in)`` uint8/uint16 with the generator's input channels -> ``(B, sH, sW, C_out)``.

        The fast path for video frames: no channel conversion, no alpha. Tiles, batches and
        out-of-memory retries as described in the module docstring.
        """
        b, h, w = batch.shape[:3]
        hp, wp = (padded_size(side, self.size_multiple, _MIN_SIDE) for side in (h, w))
        while True:
            tile, per_step = self._plan(b, hp, wp)
            try:
                if tile is None:
                    parts = [self._run_whole(batch[i : i + per_step]) for i in range(0, b, per_step)]
                    return parts[0] if len(parts) == 1 else np.concatenate(parts)
                if b == 1:  # no stacking copy of what may be a very large output
                    return self._run_tiled(batch[0], tile, per_step)[None]
                return np.stack([self._run_tiled(image, tile, per_step) for image in batch])
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                self._recover_from_oom(tile, per_step, hp, wp)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` float in the model's value range -> ``(B, C_out, scale*H, scale*W)``.

        The whole batch goes to the device at once (no tiles); the result is float32 on the CPU.
        """
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x.to(self.device, torch.float32), self.size_multiple)
        return self._forward(padded)[..., : h * self.scale, : w * self.scale].cpu()

    # ------------------------------------------------------------------ channels

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        image = _check_image(image)
        colour, alpha = split_alpha(image)
        return np.ascontiguousarray(convert_channels(colour, self.in_channels)), alpha

    def _finish(self, output: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        if alpha is None:
            return output
        return merge_alpha(output, alpha, resize=alpha.shape[:2] != output.shape[:2])

    # ------------------------------------------------------------------ device work

    def _to_device(self, batch: np.ndarray) -> torch.Tensor:
        """``(B, H, W, C)`` uint8/uint16 on the host -> ``(B, C, H, W)`` float32 on the device."""
        max_value = MAX_VALUE[batch.dtype]
        if not batch.flags.writeable:  # torch.from_numpy wants a writable array
            batch = batch.copy()
        host = torch.from_numpy(batch if batch.dtype == np.uint8 else batch.astype(np.int32))
        x = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        low, high = self.value_range
        return x.mul_((high - low) / max_value).add_(low)

    @torch.inference_mode()
    def _to_levels(self, y: torch.Tensor, dtype: np.dtype) -> np.ndarray:
        """``(B, C, H, W)`` float in the value range -> ``(B, H, W, C)`` integers of ``dtype`` (host).

        Values are clamped and rounded to the nearest level; NaN becomes black. Works in place on
        ``y`` (a tensor the caller owns) and converts to integers on the device, so only a quarter
        of the bytes travel back from a GPU.
        """
        max_value = MAX_VALUE[np.dtype(dtype)]
        low, high = self.value_range
        y = y.float()
        if low:
            y = y.sub_(low)
        y = y.mul_(max_value / (high - low)).nan_to_num_(nan=0.0).clamp_(0, max_value).round_()
        if np.dtype(dtype) == np.uint8:
            return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return y.to(torch.int32).permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.uint16)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on a padded float32 batch on the device; returns float32 on the device."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with self._autocast():
                y = self.model(x)
            y = y.float()
            if self.amp_dtype is not None and not bool(torch.isfinite(y).all()):
                name = {torch.float16: "fp16", torch.bfloat16: "bf16"}[self.amp_dtype]
                warnings.warn(
                    f"{name} inference produced NaN or inf values; switching to fp32 for this and every "
                    "following image (use --precision fp32 to start in fp32).",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.amp_dtype = None
                y = self.model(x).float()
        expected = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        if tuple(y.shape[-2:]) != expected:
            raise ValueError(
                f"the generator returned {y.shape[-2]}x{y.shape[-1]} for a {x.shape[-2]}x{x.shape[-1]} input, "
                f"but its description says scale {self.scale} ({expected[0]}x{expected[1]}); the generator "
                "file's scale is wrong"
            )
        return y

    @torch.inference_mode()
    def _run_whole(self, batch: np.ndarray) -> np.ndarray:
        h, w = batch.shape[1:3]
        x = self._to_device(pad_image(batch, self.size_multiple, _MIN_SIDE))
        y = self._forward(x)[..., : h * self.scale, : w * self.scale]
        return self._to_levels(y, batch.dtype)

    @torch.inference_mode()
    def _run_tiled(self, image: np.ndarray, tile: int, per_step: int) -> np.ndarray:
        """One ``(H, W, C)`` image through tiles; the frame and the blend stay on the host."""
        h, w = image.shape[:2]
        s = self.scale
        padded = pad_image(image, self.size_multiple, _MIN_SIDE)
        hp, wp = padded.shape[:2]
        overlap = min(self.tile_overlap, tile // 2)
        th, tw = min(tile, hp), min(tile, wp)
        ys = tile_starts(hp, th, overlap, self.size_multiple)
        xs = tile_starts(wp, tw, overlap, self.size_multiple)
        # Ramps in output pixels, one per tile row / column, and their sums (the blend's divisor).
        row_ramps = [feather_ramp(th * s, overlap * s, y > 0, y + th < hp) for y in ys]
        column_ramps = [feather_ramp(tw * s, overlap * s, x > 0, x + tw < wp) for x in xs]
        row_total, column_total = torch.zeros(hp * s), torch.zeros(wp * s)
        for y, ramp in zip(ys, row_ramps):
            row_total[y * s : (y + th) * s] += ramp
        for x, ramp in zip(xs, column_ramps):
            column_total[x * s : (x + tw) * s] += ramp
        out: np.ndarray | None = None
        blender: RowBlender | None = None

        def emit(first: int, rows: torch.Tensor) -> None:
            nonlocal out
            rows = rows[:, : max(0, h * s - first), : w * s]
            if rows.shape[1] == 0:
                return
            levels = self._to_levels(rows[None], image.dtype)[0]
            if out is None:
                out = np.empty((h * s, w * s, levels.shape[2]), image.dtype)
            out[first : first + levels.shape[0]] = levels

        for row, y in enumerate(ys):
            if blender is not None:
                blender.release(y * s, emit)
            positions = list(enumerate(xs))
            for start in range(0, len(positions), per_step):
                chunk = positions[start : start + per_step]
                tiles = np.stack([padded[y : y + th, x : x + tw] for _, x in chunk])
                outputs = self._forward(self._to_device(tiles)).cpu()
                if blender is None:
                    blender = RowBlender(outputs.shape[1], th * s, row_total, column_total)
                for (column, x), output in zip(chunk, outputs):
                    blender.add(output, row_ramps[row], column_ramps[column], y * s, x * s)
                del outputs
        assert blender is not None
        blender.release(None, emit)
        assert out is not None
        return out

    # ------------------------------------------------------------------ memory planning

    def _budget(self, *, whole: bool = False) -> int:
        """Bytes a forward pass may use. ``whole=True``: the limit for a whole image in one pass;
        otherwise the working budget that sizes tiles and batches.

        On CUDA both are 80% of the free (and cached) device memory. On the CPU a whole image may
        use up to half the available RAM (at most 8 GiB; the estimate is an upper bound), while tiles
        are sized for at most a quarter of it and 1 GiB, which keeps host memory for a 4K frame
        upscaled x4 around 2 GB.
        """
        if self.memory_budget:
            return int(self.memory_budget)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            return int(0.8 * (free + cached))
        available = available_host_memory()
        if whole:
            return int(min(0.5 * available, _CPU_WHOLE_CAP))
        return int(min(0.25 * available, _CPU_BUDGET_CAP))

    def _probe_size(self) -> int:
        return round_up(max(64, self.size_multiple), self.size_multiple)

    def bytes_per_pixel(self) -> float:
        """Device memory one input pixel needs during a forward pass (measured once, then cached).

        On CUDA the peak allocation of a probe pass is measured; on the CPU it is the sum of every
        layer's output size, an upper bound since most intermediate tensors are freed early.
        """
        if self._bytes_per_pixel is None:
            side = self._probe_size()
            x = torch.zeros(1, self.in_channels, side, side, device=self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                base = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                with torch.inference_mode(), self._autocast():
                    self.module(x)
                used = torch.cuda.max_memory_allocated(self.device) - base
            else:
                total = [0]

                def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
                    if isinstance(output, torch.Tensor):
                        total[0] += output.numel() * output.element_size()

                leaves = [m for m in self.module.modules() if not list(m.children())]
                handles = [m.register_forward_hook(hook) for m in leaves]
                try:
                    with torch.inference_mode(), self._autocast():
                        self.module(x)
                finally:
                    for handle in handles:
                        handle.remove()
                used = total[0]
            io_bytes = 4 * (self.in_channels + self.out_channels * self.scale**2)
            self._bytes_per_pixel = used / side**2 + io_bytes
        return self._bytes_per_pixel

    def _plan(self, batch: int, hp: int, wp: int) -> tuple[int | None, int]:
        """``(tile or None, images or tiles per device step)`` for ``batch`` images of padded size hp x wp."""
        step = min(self.batch_size, self._batch_cap or self.batch_size)
        tile: int | None
        if self._tile_cap is not None:  # lowered after an out-of-memory error; overrides tile=0 too
            tile = self._tile_cap if not self.tile else min(self.tile, self._tile_cap)
        elif self.tile:
            tile = self.tile
        elif self.tile == 0 or hp * wp <= self._probe_size() ** 2:
            tile = None
        else:
            bpp = self.bytes_per_pixel()
            if hp * wp * bpp <= self._budget(whole=True):
                tile = None
                step = max(1, min(step, int(self._budget(whole=True) // (hp * wp * bpp))))
            else:
                budget = self._budget()
                tile = round_up(max(_MIN_TILE, math.isqrt(int(budget / bpp))), self.size_multiple)
                step = max(1, min(step, int(budget // (tile * tile * bpp))))
        if tile is not None:
            tile = max(self.size_multiple, round_up(tile, self.size_multiple))
            if tile < hp or tile < wp:
                return tile, step
        return None, min(step, batch)

    def _recover_from_oom(self, tile: int | None, per_step: int, hp: int, wp: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        where = str(self.device)
        if per_step > 1:
            self._batch_cap = per_step // 2
            warnings.warn(
                f"out of memory on {where} with {per_step} {'tiles' if tile else 'images'} at once; "
                f"retrying with {self._batch_cap}",
                RuntimeWarning,
                stacklevel=4,
            )
            return
        current = tile if tile is not None else max(hp, wp)
        smaller = _round_down(current // 2, self.size_multiple)
        if smaller < max(_MIN_TILE, self.size_multiple):
            raise MemoryError(
                f"out of memory on {where} even with {current}-pixel tiles, one at a time; "
                "free memory on the device, or use --device cpu"
            )
        self._tile_cap = smaller
        warnings.warn(
            f"out of memory on {where}; retrying with --tile {smaller}",
            RuntimeWarning,
            stacklevel=4,
        )

