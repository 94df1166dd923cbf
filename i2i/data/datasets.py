"""Training data sets. The loader does deterministic work only (decode, resize, channel
conversion); the random crop, flip and jitter run batched on the training device
(:mod:`i2i.data.augment`), so a run's randomness lives in one place and resumes exactly.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from i2i.data.io import list_images, read_image, read_image_size
from i2i.errors import DataError, format_problems
from i2i.imageops import convert_channels, image_to_tensor, pad_to_multiple, split_pair

__all__ = [
    "PairedDataset",
    "match_pair_folders",
    "UnalignedDataset",
    "ResumableSampler",
    "detect_layout",
    "resize_for_preprocess",
    "scale_width_size",
    "collate",
]


def _resize_plane(plane: np.ndarray, width: int, height: int, top: float | None) -> np.ndarray:
    """One float32 plane through Pillow's two bicubic passes (horizontal, then vertical); like its
    8-bit path, the overshoot of the first pass is clipped to ``[0, top]`` before the second."""
    horizontal = np.asarray(Image.fromarray(plane).resize((width, plane.shape[0]), Image.Resampling.BICUBIC))
    if top is not None:
        horizontal = np.clip(horizontal, 0.0, top)
    return np.asarray(Image.fromarray(np.ascontiguousarray(horizontal)).resize((width, height), Image.Resampling.BICUBIC))


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize ``(H, W, C)`` with Pillow's ``BICUBIC`` filter, as the pix2pix/CycleGAN loaders do.

    Pillow's bicubic (a = -0.5) widens its kernel when it shrinks, so downscaling antialiases
    (OpenCV's ``INTER_CUBIC`` does not: a 600 -> 286 resize with it aliases visibly). 8-bit gray and
    RGB go through Pillow's own 8-bit path, giving the reference's pixels exactly. 16-bit images
    (and any other channel count) are resized plane by plane with the same two passes in float32
    and rounded to the nearest level, so they keep their 16-bit precision where the reference,
    which converts everything to 8-bit RGB, would drop it.
    """
    if image.shape[1] == width and image.shape[0] == height:
        return image
    channels = image.shape[2]
    if image.dtype == np.uint8 and channels in (1, 3):
        pil_image = Image.fromarray(np.ascontiguousarray(image[:, :, 0] if channels == 1 else image))
        out = np.asarray(pil_image.resize((width, height), Image.Resampling.BICUBIC))
        return out.reshape(height, width, channels)
    integer = np.issubdtype(image.dtype, np.integer)
    top = float(np.iinfo(image.dtype).max) if integer else None
    planes = [_resize_plane(image[:, :, c].astype(np.float32), width, height, top) for c in range(channels)]
    out = np.stack(planes, axis=2)
    return np.clip(np.rint(out), 0, top).astype(image.dtype) if integer else out.astype(image.dtype)


def scale_width_size(width: int, height: int, load_size: int, crop_size: int) -> tuple[int, int]:
    """``(width, height)`` after ``scale_width``: the reference's ``__scale_width`` rule.

    The width becomes ``load_size`` and the height ``int(max(load_size * height / width,
    crop_size))``: floored, not rounded, and never below ``crop_size``, in ``scale_width`` as
    well as in ``scale_width_and_crop`` (the reference passes crop_size to both). An image already
    ``load_size`` wide and at least ``crop_size`` high keeps its size.
    """
    if width == load_size and height >= crop_size:
        return width, height
    return load_size, int(max(load_size * height / width, crop_size))


def resize_for_preprocess(image: np.ndarray, mode: str, load_size: int, crop_size: int) -> np.ndarray:
    """The deterministic resizing part of a preprocess mode (the crop happens on the device).

    As pytorch-CycleGAN-and-pix2pix's ``get_transform``: ``resize_and_crop`` resizes to
    load_size x load_size; ``scale_width(_and_crop)`` scales the width to load_size keeping the
    aspect ratio (:func:`scale_width_size`); ``crop`` and ``none`` keep the size. Resizing is
    Pillow's bicubic (:func:`_resize`). The crop that follows
    (:class:`~i2i.data.augment.PairedAugment`) takes a uniformly drawn crop_size square inside
    the image, as the reference's ``get_params``/``RandomCrop`` do; where the reference passes an
    image smaller than the crop through uncropped (or pads it with black), i2i stops with an error.
    """
    h, w = image.shape[:2]
    if mode == "resize_and_crop":
        return _resize(image, load_size, load_size)
    if mode in ("scale_width", "scale_width_and_crop"):
        new_w, new_h = scale_width_size(w, h, load_size, crop_size)
        return _resize(image, new_w, new_h)
    return image


def prepare_image(
    image: np.ndarray,
    channels: int,
    preprocess: str,
    load_size: int,
    crop_size: int,
    value_range: tuple[float, float],
    size_multiple: int,
) -> torch.Tensor:
    """The loader's deterministic work on one image: channels, resizing, tensor in ``value_range``
    and, in preprocess mode ``none``, padding to the generator's multiple. Returns (C, H, W)."""
    image = convert_channels(image, channels)
    image = resize_for_preprocess(image, preprocess, load_size, crop_size)
    tensor = image_to_tensor(image, value_range)
    if preprocess == "none" and size_multiple > 1:
        tensor = pad_to_multiple(tensor[None], size_multiple)[0]
    return tensor


def detect_layout(root: Path, split: str) -> str:
    """``folders`` when ``root/A`` and ``root/B`` exist, ``aligned`` when ``root/<split>`` does."""
    if (root / "A").is_dir() and (root / "B").is_dir():
        return "folders"
    if (root / split).is_dir():
        return "aligned"
    raise DataError(
        f"No paired data found in {str(root)!r}: expected {str(root / split)!r} with aligned A|B "
        f"images, or {str(root / 'A' / split)!r} and {str(root / 'B' / split)!r} with matching file "
        "names. `i2i data demo OUT` builds a small example set."
    )


class SizedDataset(Dataset):
    """A map-style data set that knows its length, which the loop counts epochs in: the base of
    every data set a task builds."""

    def __len__(self) -> int:
        raise NotImplementedError


def match_pair_folders(a_dir: Path, b_dir: Path) -> list[tuple[Path, Path | None]]:
    """The pairs of the folders layout (``A/<split>``, ``B/<split>``): files matched by relative path
    without extension, same sizes; every mismatch listed in one DataError."""
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise DataError(f"Folder {str(d)!r} does not exist (folders layout: root/A/<split>, root/B/<split>).")
    a = {p.relative_to(a_dir).with_suffix("").as_posix(): p for p in list_images(a_dir)}
    b = {p.relative_to(b_dir).with_suffix("").as_posix(): p for p in list_images(b_dir)}
    problems = [f"{a[k]} has no match in {b_dir}" for k in sorted(set(a) - set(b))]
    problems += [f"{b[k]} has no match in {a_dir}" for k in sorted(set(b) - set(a))]
    for key in sorted(set(a) & set(b)):
        (h_a, w_a), (h_b, w_b) = read_image_size(a[key]), read_image_size(b[key])
        if (h_a, w_a) != (h_b, w_b):
            problems.append(f"{a[key]} is {w_a}x{h_a} but {b[key]} is {w_b}x{h_b}")
    if problems:
        listed = format_problems(problems)
        raise DataError(f"The A and B folders do not pair up:\n{listed}")
    return [(a[k], b[k]) for k in sorted(a)]


class PairedDataset(SizedDataset):
    """Pairs of images for pix2pix.

    Items are ``{"a": (Ca, H, W), "b": (Cb, H, W), "path": str}`` float tensors in ``value_range``,
    already swapped when ``direction`` is ``BtoA``. Two layouts: ``aligned`` (one ``A|B`` image per
    pair in ``root/<split>/``) and ``folders`` (``root/A/<split>/x`` pairs with ``root/B/<split>/x``
    by relative path without extension). Name and size mismatches are found at construction.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        layout: str = "auto",
        direction: str = "AtoB",
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        value_range: tuple[float, float] = (-1.0, 1.0),
        max_items: int = 0,
        size_multiple: int = 1,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"Data folder {str(self.root)!r} does not exist; set data.root.")
        self.layout = detect_layout(self.root, split) if layout == "auto" else layout
        self.direction = direction
        self.preprocess = preprocess
        self.load_size = load_size
        self.crop_size = crop_size
        self.value_range = value_range
        self.size_multiple = size_multiple
        # Channels of the A and B images as stored; direction decides which feeds the network.
        self.channels_a, self.channels_b = (
            (in_channels, out_channels) if direction == "AtoB" else (out_channels, in_channels)
        )
        if self.layout == "aligned":
            folder = self.root / split
            if not folder.is_dir():
                raise DataError(f"Split folder {str(folder)!r} does not exist.")
            self.items: list[tuple[Path, Path | None]] = [(p, None) for p in list_images(folder)]
            self._check_aligned()
        elif self.layout == "folders":
            self.items = match_pair_folders(self.root / "A" / split, self.root / "B" / split)
        else:
            raise DataError(f"Unknown layout {layout!r}; expected auto, aligned or folders.")
        if max_items:
            self.items = self.items[:max_items]
        if not self.items:
            raise DataError(f"No images found for split {split!r} in {str(self.root)!r}.")

    def _check_aligned(self) -> None:
        odd = [str(p) for p, _ in self.items if read_image_size(p)[1] % 2]
        if odd:
            listed = format_problems(odd)
            raise DataError(
                "Aligned A|B images must have an even width (A left half, B right half); "
                f"these do not:\n{listed}"
            )

    def __len__(self) -> int:
        return len(self.items)

    def _load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        first, second = self.items[index]
        if second is None:
            return split_pair(read_image(first))
        return read_image(first), read_image(second)

    def _prepare(self, image: np.ndarray, channels: int) -> torch.Tensor:
        return prepare_image(
            image, channels, self.preprocess, self.load_size, self.crop_size, self.value_range, self.size_multiple
        )

    def __getitem__(self, index: int) -> dict:
        image_a, image_b = self._load_pair(index)
        a = self._prepare(image_a, self.channels_a)
        b = self._prepare(image_b, self.channels_b)
        if self.direction == "BtoA":
            a, b = b, a
        return {"a": a, "b": b, "path": str(self.items[index][0])}


class UnalignedDataset(SizedDataset):
    """Two unpaired domains for CycleGAN: ``root/<split>A/`` and ``root/<split>B/``.

    The length is the larger domain. Item ``i`` takes A image ``i mod |A|`` and a B image drawn at
    random (or ``i mod |B|`` with ``serial_batches``). The draw depends only on the seed, the epoch
    (:meth:`set_epoch`) and ``i``, so loader workers need no random state and resume is exact.
    Items: ``{"a", "b", "path", "path_b"}`` in ``value_range``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        preprocess: str = "resize_and_crop",
        load_size: int = 286,
        crop_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        value_range: tuple[float, float] = (-1.0, 1.0),
        max_items: int = 0,
        size_multiple: int = 1,
        serial_batches: bool = False,
        seed: int = 0,
        min_items: int = 1,
    ) -> None:
        self.root = Path(root)
        self.preprocess, self.load_size, self.crop_size = preprocess, load_size, crop_size
        self.channels = {"a": in_channels, "b": out_channels}
        self.value_range, self.size_multiple = value_range, size_multiple
        self.serial_batches, self.seed, self.epoch = serial_batches, seed, 0
        self.files: dict[str, list[Path]] = {}
        for domain in ("A", "B"):
            folder = self.root / f"{split}{domain}"
            if not folder.is_dir():
                raise DataError(
                    f"Folder {str(folder)!r} does not exist. Unpaired data needs {split}A/ and {split}B/ "
                    f"in {str(self.root)!r} (`i2i data demo OUT` builds an example)."
                )
            files = list_images(folder)
            if len(files) < min_items:
                raise DataError(
                    f"Domain {domain} has {len(files)} image(s) in {str(folder)!r}; at least {min_items} are needed "
                    "(one batch). Add images or lower data.batch_size."
                )
            self.files[domain.lower()] = files
        self.length = max(len(self.files["a"]), len(self.files["b"]))
        if max_items:
            self.length = min(self.length, max_items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _prepare(self, path: Path, domain: str) -> torch.Tensor:
        return prepare_image(
            read_image(path), self.channels[domain], self.preprocess, self.load_size, self.crop_size,
            self.value_range, self.size_multiple,
        )

    def __getitem__(self, index: int) -> dict:
        files_a, files_b = self.files["a"], self.files["b"]
        path_a = files_a[index % len(files_a)]
        if self.serial_batches:
            path_b = files_b[index % len(files_b)]
        else:
            path_b = files_b[int(np.random.default_rng((self.seed, self.epoch, index)).integers(len(files_b)))]
        return {"a": self._prepare(path_a, "a"), "b": self._prepare(path_b, "b"), "path": str(path_a), "path_b": str(path_b)}


def collate(items: list[dict]) -> dict:
    """Stack tensors into a batch and list everything else; mixed image sizes give a clear error."""
    batch: dict[str, Any] = {}
    for key, first in items[0].items():
        if not torch.is_tensor(first):
            batch[key] = [item[key] for item in items]
            continue
        sizes = {tuple(item[key].shape[-2:]) for item in items}
        if len(sizes) > 1:
            raise DataError(
                f"A batch mixes image sizes {sorted(sizes)}; with this preprocess mode use data.batch_size=1, "
                "or data.preprocess=resize_and_crop to make every image the same size."
            )
        batch[key] = torch.stack([item[key] for item in items])
    return batch


class ResumableSampler(DistributedSampler):
    """A DistributedSampler that can start part-way into an epoch (for exact resume).

    With ``num_replicas=1`` it is a seeded shuffling sampler; ``set_epoch`` reshuffles, and
    ``skip`` drops the first ``n`` indices of this rank for the current epoch only.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self._skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self._skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self._skip :])

    def __len__(self) -> int:
        return self.num_samples - self._skip


def steps_per_epoch(num_items: int, batch_size: int, world_size: int) -> int:
    """Optimizer steps in one pass over the data, per rank (the last batch may be short)."""
    return max(1, math.ceil(math.ceil(num_items / world_size) / batch_size))
