"""Super-resolution data: HR images with LR inputs made on the device, or LR/HR pairs.

Two layouts under ``root``:

- **HR only**: ``root/<split>/`` holds high-resolution images (a DIV2K-style folder:
  ``data.root: DIV2K, data.train_split: DIV2K_train_HR``). The LR input is made from each HR
  crop on the training device (:func:`i2i.data.resize.degrade`, MATLAB bicubic by default).
- **paired**: ``root/HR/<split>/`` and ``root/LR/<split>/`` with matching names (an LR file may
  carry an ``x4``-style suffix, as DIV2K's ``0001x4.png``); each LR image is exactly ``1/scale``
  of its HR image (the HR image may have up to ``scale - 1`` extra rows/columns, cropped off).

The loader does deterministic work only. Training items are fixed **tiles** of ``tile_size``
HR pixels on a half-overlapping grid (BasicSR's "sub-images", cut on the fly), so images of any
size batch together; the random crop inside the tile, the flips and the 90-degree rotations run
batched on the device with kornia (:class:`SRAugment`). Validation items are whole images
cropped to a multiple of the scale.
"""
from __future__ import annotations

from pathlib import Path

import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info

from i2i.data.datasets import SizedDataset
from i2i.data.io import list_images, read_image, read_image_size
from i2i.errors import ConfigError, DataError, format_problems
from i2i.imageops import convert_channels, image_to_tensor
from i2i.data.resize import RESIZE_METHODS, degrade

__all__ = ["SRDataset", "SRAugment", "detect_sr_layout", "tile_positions"]


def detect_sr_layout(root: Path, split: str) -> str:
    """``paired`` when ``root/HR/<split>`` and ``root/LR/<split>`` exist, ``hr`` when ``root/<split>`` does."""
    if (root / "HR" / split).is_dir() and (root / "LR" / split).is_dir():
        return "paired"
    if (root / split).is_dir():
        return "hr"
    raise DataError(
        f"No SR data found for split {split!r} in {str(root)!r}: expected HR images in "
        f"{str(root / split)!r}, or pairs in {str(root / 'HR' / split)!r} and {str(root / 'LR' / split)!r}."
    )


def tile_positions(length: int, tile: int) -> list[int]:
    """Start offsets of ``tile``-long windows covering ``length`` with half overlap (last one flush)."""
    if length < tile:
        return []
    step = max(1, tile // 2)
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


class SRDataset(SizedDataset):
    """Items ``{"a": LR (C, h, w), "b": HR (C, s*h, s*w), "path": str}``, float in [0, 1].

    In the HR-only layout ``"a"`` is a zero placeholder of the LR size: the task replaces it with
    the degraded HR on the device. ``tile_size`` (HR pixels, a multiple of ``scale``) cuts
    training tiles; 0 gives whole images (cropped to a multiple of ``scale``). Decoded images
    are kept in memory up to ``cache_bytes`` when loading in the main process
    (``data.num_workers: 0``); loader workers decode each time.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        scale: int,
        tile_size: int = 0,
        channels: int = 3,
        max_items: int = 0,
        cache_bytes: int = 2**30,
    ) -> None:
        self.root = Path(root)
        self.cache_bytes = cache_bytes
        self._cache: dict[Path, np.ndarray] = {}
        self._cached_bytes = 0
        if not self.root.is_dir():
            raise DataError(f"Data folder {str(self.root)!r} does not exist; set data.root.")
        if tile_size % scale:
            raise DataError(f"data.load_size (the HR tile, {tile_size}) must be a multiple of the scale {scale}.")
        self.scale = scale
        self.tile_size = tile_size
        self.channels = channels
        self.layout = detect_sr_layout(self.root, split)
        self.paired = self.layout == "paired"
        if self.paired:
            pairs = self._match(self.root / "LR" / split, self.root / "HR" / split)
        else:
            pairs = [(None, p) for p in list_images(self.root / split)]
        if not pairs:
            raise DataError(f"No images found for split {split!r} in {str(self.root)!r}.")
        self.items: list[tuple[Path | None, Path, int, int]] = []
        too_small = []
        for lr, hr in pairs:
            if tile_size == 0:
                self.items.append((lr, hr, -1, -1))
                continue
            # Pairs are tiled on the LR grid (offsets in LR pixels), HR-only images on the HR grid.
            height, width = read_image_size(lr if lr is not None else hr)
            tile = tile_size // scale if lr is not None else tile_size
            ys, xs = tile_positions(height, tile), tile_positions(width, tile)
            if not ys or not xs:
                too_small.append(str(hr))
                continue
            self.items.extend((lr, hr, y, x) for y in ys for x in xs)
        if too_small:
            listed = format_problems(too_small)
            raise DataError(
                f"These images are smaller than the HR tile data.load_size={tile_size}; lower load_size "
                f"(it must stay >= data.crop_size) or remove them:\n{listed}"
            )
        if max_items:
            self.items = self.items[:max_items]

    def _match(self, lr_dir: Path, hr_dir: Path) -> list[tuple[Path | None, Path]]:
        lr_files = {p.relative_to(lr_dir).with_suffix("").as_posix(): p for p in list_images(lr_dir)}
        pairs: list[tuple[Path | None, Path]] = []
        problems: list[str] = []
        suffix = f"x{self.scale}"
        for hr in list_images(hr_dir):
            key = hr.relative_to(hr_dir).with_suffix("").as_posix()
            lr = lr_files.get(key) or lr_files.get(key + suffix)
            if lr is None:
                problems.append(f"{hr} has no LR image in {lr_dir}")
                continue
            (h_lr, w_lr), (h_hr, w_hr) = read_image_size(lr), read_image_size(hr)
            if not (0 <= h_hr - h_lr * self.scale < self.scale and 0 <= w_hr - w_lr * self.scale < self.scale):
                problems.append(
                    f"{lr} is {w_lr}x{h_lr} but {hr} is {w_hr}x{h_hr}; at x{self.scale} expected "
                    f"{w_lr * self.scale}x{h_lr * self.scale}"
                )
                continue
            pairs.append((lr, hr))
        if problems:
            listed = format_problems(problems)
            raise DataError(f"The LR and HR folders do not pair up:\n{listed}")
        return pairs

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, path: Path) -> np.ndarray:
        """The decoded ``(H, W, C)`` image; kept in memory (in the main process, within
        ``cache_bytes``) because every tile of an image needs the whole file decoded."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        image = np.ascontiguousarray(convert_channels(read_image(path), self.channels))
        if get_worker_info() is None and self._cached_bytes + image.nbytes <= self.cache_bytes:
            self._cache[path] = image
            self._cached_bytes += image.nbytes
        return image

    def __getitem__(self, index: int) -> dict:
        lr_path, hr_path, y, x = self.items[index]
        s = self.scale
        hr = self._load(hr_path)
        if lr_path is not None:
            lr = self._load(lr_path)
            if y >= 0:
                t = self.tile_size // s
                lr = lr[y : y + t, x : x + t]
                hr = hr[y * s : (y + t) * s, x * s : (x + t) * s]
            else:
                hr = hr[: lr.shape[0] * s, : lr.shape[1] * s]
            lr_tensor = image_to_tensor(lr, (0.0, 1.0))
            hr_tensor = image_to_tensor(hr, (0.0, 1.0))
        else:
            if y >= 0:
                hr = hr[y : y + self.tile_size, x : x + self.tile_size]
            else:
                h, w = hr.shape[:2]
                hr = hr[: h - h % s, : w - w % s]
            hr_tensor = image_to_tensor(hr, (0.0, 1.0))
            lr_tensor = torch.zeros(hr_tensor.shape[0], hr_tensor.shape[1] // s, hr_tensor.shape[2] // s)
        return {"a": lr_tensor, "b": hr_tensor, "path": str(hr_path)}


class SRAugment:
    """Random HR crop, flips and 90-degree rotations on the device, and LR made on the device.

    ``__call__(a, b, paired)`` takes a batch from :class:`SRDataset` and returns ``(lr, hr)``:
    HR-only batches are cropped (kornia ``RandomCrop``), flipped and rotated, then degraded;
    paired batches get one crop aligned on the LR grid, and the same flips and rotation are applied
    to both by stacking the nearest-upscaled LR with the HR (exact: LR pixels become constant
    ``scale x scale`` blocks that the transforms move whole). Flips (horizontal, vertical) and a
    90-degree rotation each happen with probability 1/2, which draws all eight symmetries of the
    square uniformly. :meth:`make_lr` is the degradation alone (validation).
    """

    def __init__(
        self,
        *,
        scale: int,
        crop_size: int = 96,
        flip: bool = True,
        rotate: bool = True,
        degradation: str = "bicubic",
        quantize: bool = True,
    ) -> None:
        if degradation not in RESIZE_METHODS:
            raise ConfigError(f"Unknown degradation {degradation!r}; expected one of {', '.join(RESIZE_METHODS)}.")
        if crop_size % scale:
            raise ConfigError(f"data.crop_size ({crop_size}) must be a multiple of the scale ({scale}).")
        self.scale = scale
        self.crop_size = crop_size
        self.degradation = degradation
        self.quantize = quantize
        self.crop = K.RandomCrop((crop_size, crop_size)) if crop_size else None
        transforms = []
        if flip:
            transforms += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
        if rotate:
            transforms.append(K.RandomRotation90(times=(1, 1), p=0.5, resample="nearest"))
        self.transforms = K.AugmentationSequential(*transforms) if transforms else None

    def make_lr(self, hr: torch.Tensor) -> torch.Tensor:
        return degrade(hr, self.scale, self.degradation, quantize=self.quantize)

    def _check(self, hr: torch.Tensor) -> None:
        if self.crop_size and min(hr.shape[-2:]) < self.crop_size:
            raise ConfigError(
                f"HR tiles of {hr.shape[-1]}x{hr.shape[-2]} are smaller than data.crop_size={self.crop_size}; "
                "raise data.load_size or lower crop_size."
            )

    def __call__(self, a: torch.Tensor, b: torch.Tensor, *, paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(b)
        if not paired:
            if self.crop is not None:
                b = self.crop(b)
            if self.transforms is not None:
                b = self.transforms(b)
            return self.make_lr(b), b
        s = self.scale
        if self.crop_size:
            t = self.crop_size // s
            batch, _, height, width = a.shape
            ys = torch.randint(0, height - t + 1, (batch,)).tolist()
            xs = torch.randint(0, width - t + 1, (batch,)).tolist()
            a = torch.stack([a[i, :, y : y + t, x : x + t] for i, (y, x) in enumerate(zip(ys, xs))])
            b = torch.stack([b[i, :, y * s : (y + t) * s, x * s : (x + t) * s] for i, (y, x) in enumerate(zip(ys, xs))])
        if self.transforms is not None:
            channels = a.shape[1]
            stacked = torch.cat([F.interpolate(a, scale_factor=s, mode="nearest"), b], dim=1)
            stacked = self.transforms(stacked)
            a, b = stacked[:, :channels, ::s, ::s].contiguous(), stacked[:, channels:].contiguous()
        return a, b
