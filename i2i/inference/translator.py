"""Run a generator on images of any size, channel count and bit depth.

:class:`Translator` composes three layers, each in its own module:

* :mod:`~i2i.inference.adapter`: channels, alpha and bit depth (gray in, RGBA, uint16), and the
  conversion to and from the generator's value range on the device.
* :mod:`~i2i.inference.runner`: device, precision (fp16 on CUDA, fp32 elsewhere, with an fp32
  fallback on NaN), batches, out-of-memory retries.
* :mod:`~i2i.inference.planner`: memory budgets, whole image or tiles, the tile size, and what to
  lower after an out-of-memory error.

**Size.** The image is padded by reflection (repeated for tiny images) to the generator's size
multiple (``model.size_multiple``, e.g. ``2**num_downs`` for a U-Net) and the output is cropped back,
so the output is exactly ``scale`` x the input (``scale`` is 1 for translation, 2/4/... for SR).
Images that do not fit on the device are cut into overlapping tiles whose outputs are blended with
feathered weights (:mod:`i2i.inference.tiling`).

**Normalisation mode.** ``norm_mode="eval"`` uses BatchNorm's stored statistics and no dropout;
``"train"`` normalises each image with its own statistics and keeps dropout on, as
pytorch-CycleGAN-and-pix2pix's ``test.py`` does by default (see :mod:`~i2i.inference.runner`).
``"auto"`` (the default) is ``train`` for that project's generator files that hold BatchNorm or
dropout, so they give what ``test.py`` gives, and ``eval`` for everything else (i2i's own files,
which validate and sample in eval mode during training, and every upscaler). Train mode translates
one whole image per forward pass (no tiles, batch size 1).

**Batches.** :meth:`Translator.translate_images` sends images of the same size together, up to
``batch_size`` at a time (tiles of one image are batched the same way); the default is 4 on CUDA
and 1 on the CPU (measured faster there: a batch only adds cache misses).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.device import PRECISIONS, resolve_device
from i2i.errors import ModelError, UsageError
from i2i.imageops import pad_to_multiple
from i2i.inference.adapter import ImageAdapter
from i2i.inference.planner import InferenceMemoryError, MemoryPlanner, available_host_memory
from i2i.inference.runner import NORM_MODES, Runner, is_out_of_memory, usable_cores, use_cpu_cores

__all__ = [
    "Translator",
    "PRECISIONS",
    "InferenceMemoryError",
    "is_out_of_memory",
    "available_host_memory",
    "usable_cores",
    "resolve_norm_mode",
]


ALPHA_MODES = ("bilinear", "model")


def _check_output_options(outscale: float | None, alpha: str, scale: int) -> None:
    if outscale is not None and not outscale > 0:
        raise UsageError(f"--outscale must be a positive factor such as 2 or 3.5, got {outscale}")
    if alpha not in ALPHA_MODES:
        raise UsageError(f"--alpha {alpha!r} is not a mode; use one of {', '.join(ALPHA_MODES)}")
    if alpha == "model" and scale == 1:
        raise UsageError("--alpha model needs an upscaling model; a translator keeps the alpha as it is")


def resolve_norm_mode(norm_mode: str, info: GeneratorInfo) -> str:
    """``"eval"`` or ``"train"`` for a generator: ``auto`` is ``train`` for pytorch-CycleGAN-and-pix2pix
    generators with BatchNorm or dropout (what that project's ``test.py`` runs without ``--eval``),
    ``eval`` otherwise."""
    if norm_mode not in ("auto", *NORM_MODES):
        raise UsageError(f"--norm-mode {norm_mode!r} is not a mode; use auto, train or eval")
    if norm_mode != "auto":
        return norm_mode
    official = info.source.startswith("pytorch-CycleGAN-and-pix2pix") and int(info.scale) == 1
    has_train_behaviour = info.kwargs.get("norm") == "batch" or bool(info.kwargs.get("dropout"))
    return "train" if official and has_train_behaviour else "eval"


def _check_train_mode(tile: int | None, batch_size: int | None, explicit: bool) -> None:
    """Train-mode normalisation takes its statistics from one whole image: no tiles, no batches."""
    mode = "--norm-mode train" if explicit else (
        "this pytorch-CycleGAN-and-pix2pix file runs in train mode, as its test.py does; it"
    )
    fix = "add --norm-mode eval to use the stored statistics (tiles and batches allowed)"
    if tile:
        raise UsageError(
            f"--tile {tile}: {mode} normalises each image with its own statistics, which tiles would change; "
            f"leave out --tile, or {fix}"
        )
    if batch_size is not None and batch_size > 1:
        raise UsageError(
            f"--batch-size {batch_size}: {mode} normalises with the statistics of the whole batch, so each "
            f"image must go alone; leave out --batch-size, or {fix}"
        )


def _refuse_published_discriminator(spec: str | Path) -> None:
    """A catalogue name of a published discriminator (``RealESRGAN_x4plus_netD``) is refused
    before anything is downloaded; a file of that name, if there is one, is judged by its content."""
    try:
        if Path(spec).exists():
            return
    except OSError:
        pass
    from i2i.catalogue import find_pretrained

    entry = find_pretrained(str(spec))
    if entry is None or entry.kind != "discriminator":
        return
    generator = entry.name.removesuffix("_netD")
    instead = f"--model {generator}" if find_pretrained(generator) is not None else "a generator's name"
    raise ModelError(
        f"{str(spec)!r} is a discriminator, published for fine-tuning (i2i train --init-from), not a model "
        f"that translates images; use {instead} (`i2i models --pretrained` lists them)"
    )


def _check_options(tile: int | None, tile_overlap: int, batch_size: int | None) -> None:
    if tile is not None and tile < 0:
        raise UsageError(f"--tile must be a positive size in pixels, 0 (never tile) or automatic (not given), got {tile}")
    if tile_overlap < 0:
        raise UsageError(f"--tile-overlap must be >= 0 pixels, got {tile_overlap}")
    if tile and tile_overlap * 2 > tile:
        raise UsageError(
            f"--tile-overlap {tile_overlap} is more than half the tile size {tile}; "
            f"use a larger --tile or an overlap of at most {tile // 2}"
        )
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")


class Translator:
    """A generator ready for inference on ``device``.

    Args:
        model: any ``nn.Module`` mapping ``(B, C_in, H, W)`` to ``(B, C_out, scale*H, scale*W)`` in
            ``info.value_range``; ``model.size_multiple`` (default 1) is the size it needs.
        info: what the generator is (value range, scale, channels in ``info.kwargs``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"`` ... (see :func:`i2i.device.resolve_device`).
        tile: tile size in input pixels; None chooses from free memory when needed, 0 never tiles.
        tile_overlap: overlap between neighbouring tiles in input pixels (at most ``tile / 2``).
        batch_size: images (or tiles) sent to the device together (default: 4 on CUDA, 1 on the CPU,
            where larger batches only add cache misses).
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16`` or ``bf16``.
        channels_last: use the channels-last memory format (default: on; on the CPU, with the host
            memory cache, it is as fast or faster for every architecture measured, up to 1.9x for
            SR networks; docs/benchmarks.md).
        host_memory_cache: on the CPU, keep freed host memory for reuse (see
            :mod:`i2i.host_memory`; about 2x for the bundled x4 model on two cores).
        compile: ``torch.compile`` the model (True, or a backend name such as ``"inductor"``).
        num_threads: CPU threads for torch (default: every usable core).
        memory_budget: bytes the automatic tile size may use (default: from free memory).
        outscale: resize the output to ``outscale`` x the input after the network's own scale
            (Lanczos, sizes truncated to whole pixels: Real-ESRGAN's ``--outscale``); None keeps
            the network's scale.
        alpha: how an upscaler treats an alpha channel: ``bilinear`` resizes it, ``model`` runs it
            through the network as a gray image (Real-ESRGAN's default).
        norm_mode: ``auto``, ``eval`` or ``train`` (see the module docstring); ``self.norm_mode`` is
            the resolved mode.
        seed: with ``norm_mode`` train, makes dropout repeatable (the same image gives the same
            output); None leaves it random, as ``test.py`` does.

    Raises :class:`~i2i.errors.UsageError` for option values that cannot work and
    :class:`~i2i.errors.DeviceError` for a device or precision that does not exist here.
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
        outscale: float | None = None,
        alpha: str = "bilinear",
        norm_mode: str = "auto",
        seed: int | None = None,
    ) -> None:
        _check_options(tile, tile_overlap, batch_size)
        _check_output_options(outscale, alpha, int(info.scale))
        self.norm_mode = resolve_norm_mode(norm_mode, info)
        if self.norm_mode == "train":
            _check_train_mode(tile, batch_size, explicit=norm_mode == "train")
            tile, batch_size = 0, 1
        resolved = resolve_device(str(device))
        if resolved.type == "cpu":
            use_cpu_cores(num_threads, host_memory_cache)
        self.info = info
        self.options: dict[str, Any] = dict(
            tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, precision=precision,
            channels_last=channels_last, compile=compile, num_threads=num_threads, memory_budget=memory_budget,
            host_memory_cache=host_memory_cache, outscale=outscale, alpha=alpha, norm_mode=norm_mode, seed=seed,
        )
        self.outscale, self.alpha = outscale, alpha
        self.adapter = ImageAdapter.for_generator(info)
        self.runner = Runner(
            model, self.adapter, device=resolved, scale=int(info.scale), precision=precision, batch_size=batch_size,
            channels_last=channels_last, compile=compile, norm_mode=self.norm_mode, seed=seed,
        )
        self.planner = MemoryPlanner(
            device=resolved, size_multiple=self.runner.size_multiple, batch_size=self.runner.batch_size, tile=tile,
            tile_overlap=tile_overlap, memory_budget=memory_budget, measure=self.runner.peak_bytes,
            io_bytes_per_pixel=4 * (self.adapter.in_channels + self.adapter.out_channels * int(info.scale) ** 2),
        )
        self.precision = precision
        self.tile, self.tile_overlap, self.memory_budget = tile, tile_overlap, memory_budget

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, direction: str | None = None, device: str | torch.device = "cpu", **options: Any
    ) -> "Translator":
        """Load a generator file, run folder or foreign checkpoint (see :func:`load_generator`);
        ``path`` may also be any model spec the command line takes (a bundled or catalogue name, a URL)."""
        spec = os.fspath(path)  # a str, not a Path: a URL's "//" must survive
        _refuse_published_discriminator(spec)
        model, info = load_generator(spec, direction=direction)
        translator = cls(model, info, device=device, **options)
        translator.runner.source = f"the model {spec!r}"
        return translator

    def to_device(self, device: str | torch.device) -> "Translator":
        """A copy of this translator (same options, its own model copy) on another device."""
        module = copy.deepcopy(self.module).to("cpu")
        copied = Translator(module, self.info, device=device, **self.options)
        copied.runner.source = self.runner.source
        return copied

    # ------------------------------------------------------------------ what the layers hold

    device = property(lambda self: self.runner.device, doc="The device the generator runs on.")
    module = property(lambda self: self.runner.module, doc="The plain generator module (copies, export).")
    batch_size = property(lambda self: self.runner.batch_size, doc="Images or tiles per device step.")
    channels_last = property(lambda self: self.runner.channels_last, doc="Channels-last memory format in use.")
    size_multiple = property(lambda self: self.runner.size_multiple, doc="The size the generator needs.")
    scale = property(lambda self: self.runner.scale, doc="Output size / input size.")
    in_channels = property(lambda self: self.adapter.in_channels, doc="The generator's input channels.")
    out_channels = property(lambda self: self.adapter.out_channels, doc="The generator's output channels.")
    value_range = property(lambda self: self.adapter.value_range, doc="The generator's value range.")
    amp_dtype = property(lambda self: self.runner.amp_dtype, doc="The autocast dtype, None for fp32.")

    @property
    def model(self) -> nn.Module:
        """What runs: the module, or its compiled form; may be replaced (e.g. by a recording wrapper)."""
        return self.runner.model

    @model.setter
    def model(self, model: nn.Module) -> None:
        self.runner.model = model

    def bytes_per_pixel(self) -> float:
        """Device memory one input pixel needs during a forward pass (measured once, then cached)."""
        return self.planner.bytes_per_pixel()

    # ------------------------------------------------------------------ public API

    def translate_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` uint8/uint16 RGB(A) or gray -> the translated image, same dtype.

        The output is ``(scale*H, scale*W, C_out)`` (``C_out + 1`` with alpha); see
        :mod:`i2i.inference.adapter` for the channel rules.
        """
        return self.translate_images([image])[0]

    def translate_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate several images; those of the same size and dtype go to the device together.

        With ``alpha="model"`` the alpha planes go through the network too, batched with the rest;
        with ``outscale`` every output is then resized to ``outscale`` x its input.
        """
        prepared = [self.adapter.prepare(image) for image in images]
        arrays = [p.colour for p in prepared]
        alpha_slot: dict[int, int] = {}
        if self.alpha == "model":
            for index, p in enumerate(prepared):
                if p.alpha is not None:
                    alpha_slot[index] = len(arrays)
                    arrays.append(self.adapter.alpha_as_input(p.alpha))
        outputs = self._translate_arrays(arrays)
        return [
            self._resize_to_outscale(
                self.adapter.finish(outputs[i], p, outputs[alpha_slot[i]] if i in alpha_slot else None),
                images[i].shape[:2],
            )
            for i, p in enumerate(prepared)
        ]

    def _translate_arrays(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(H, W, C_in)`` arrays -> outputs; same-size, same-dtype arrays share device steps."""
        results: list[np.ndarray | None] = [None] * len(arrays)
        groups: dict[tuple, list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault((array.shape, array.dtype.str), []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, output in zip(chunk, self.translate_array(np.stack([arrays[i] for i in chunk]))):
                    results[i] = output
        return results  # type: ignore[return-value]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` of the output for an input of that size."""
        if self.outscale is None:
            return height * self.scale, width * self.scale
        return int(height * self.outscale), int(width * self.outscale)

    def _resize_to_outscale(self, output: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
        height, width = self.output_size(*input_size)
        if output.shape[:2] == (height, width):
            return output
        resized = cv2.resize(output, (max(width, 1), max(height, 1)), interpolation=cv2.INTER_LANCZOS4)
        return resized.reshape(resized.shape[0], resized.shape[1], output.shape[2])

    def translate_array(self, batch: np.ndarray) -> np.ndarray:
        """``(B, H, W, C_in)`` uint8/uint16 with the generator's input channels -> ``(B, sH, sW, C_out)``.

        The fast path for video frames: no channel conversion, no alpha. Tiles, batches and
        out-of-memory retries as described in :mod:`i2i.inference.planner`.
        """
        return self.runner.run(batch, self.planner)

    @torch.no_grad()
    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` float in the model's value range -> ``(B, C_out, scale*H, scale*W)``.

        The whole batch goes to the device at once (no tiles); the result is float32 on the CPU.
        """
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x.to(self.device, torch.float32), self.size_multiple)
        return self.runner.forward(padded)[..., : h * self.scale, : w * self.scale].cpu()
