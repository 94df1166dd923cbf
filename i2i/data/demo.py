"""Small real paired data sets built offline from photos that Python packages ship.

No data set can be downloaded everywhere, but scikit-image (a dependency) installs a handful of
real colour photographs. :func:`make_paired_demo` cuts random crops from them and writes two
paired sets in the aligned pix2pix ``A|B`` format:

- ``edges2photo``: A = Canny edges drawn as black lines on white (3 channels), B = the photo;
  a tiny cousin of edges2shoes.
- ``gray2color``: A = the photo in gray (BT.601 luma, 3 channels), B = the photo; colourisation.

Photos are held out by split: every crop in ``val/`` comes from one photo and every crop in
``test/`` from another, and neither photo is used in ``train/``, so validation measures
generalisation to unseen images rather than to unseen crops of seen ones.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from i2i.data.io import write_image
from i2i.errors import DataError

__all__ = ["DEMO_PHOTOS", "DemoPhoto", "load_demo_photos", "load_skimage_photo", "make_paired_demo"]


@dataclass(frozen=True)
class DemoPhoto:
    """A photo shipped by a package: ``name`` (file stem), ``package``, ``source`` and licence."""

    name: str
    package: str
    source: str
    credit: str


def load_skimage_photo(function: str) -> np.ndarray:
    """The photo ``skimage.data.<function>()`` returns, as uint8: (H, W, 3) colour or (H, W) gray;
    of a stereo pair, the left view."""
    import skimage.data

    image = getattr(skimage.data, function)()
    image = image[0] if isinstance(image, tuple) else image
    return np.asarray(image, dtype=np.uint8)


def _skimage(function: str) -> Callable[[], np.ndarray]:
    return lambda: load_skimage_photo(function)


# Catalogue order is fixed: each photo's crops are drawn from a generator seeded by (seed, its
# position here), so a missing package does not change the crops of the other photos.
DEMO_PHOTOS: tuple[tuple[DemoPhoto, Callable[[], np.ndarray]], ...] = (
    (
        DemoPhoto("astronaut", "scikit-image", "skimage.data.astronaut()", "Eileen Collins, NASA; public domain"),
        _skimage("astronaut"),
    ),
    (
        DemoPhoto("chelsea", "scikit-image", "skimage.data.chelsea()", "Stefan van der Walt; CC0"),
        _skimage("chelsea"),
    ),
    (
        DemoPhoto("coffee", "scikit-image", "skimage.data.coffee()", "Rachel Michetti / Pikolo Espresso Bar; CC0"),
        _skimage("coffee"),
    ),
    (
        DemoPhoto("rocket", "scikit-image", "skimage.data.rocket()", "SpaceX DSCOVR launch photo; public domain"),
        _skimage("rocket"),
    ),
    (
        DemoPhoto(
            "motorcycle",
            "scikit-image",
            "skimage.data.stereo_motorcycle()[0]",
            "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
        ),
        _skimage("stereo_motorcycle"),
    ),
)

_MIN_PHOTOS = 3  # one for val, one for test, at least one for train
_SCALE_RANGE = (1.25, 2.0)  # short side after resizing, as a multiple of the crop size


def load_demo_photos() -> list[tuple[int, DemoPhoto, np.ndarray]]:
    """Load every available demo photo as ``(catalogue index, info, (H, W, 3) uint8 RGB)``.

    A photo whose package is missing or fails to load is skipped with a ``RuntimeWarning``.
    """
    photos = []
    for index, (info, load) in enumerate(DEMO_PHOTOS):
        try:
            image = np.asarray(load())
        except Exception as error:  # ImportError, or a package that changed its data API
            warnings.warn(f"demo photo '{info.name}' skipped: {info.source} failed ({error})", RuntimeWarning)
            continue
        if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
            warnings.warn(f"demo photo '{info.name}' skipped: not an 8-bit colour image", RuntimeWarning)
            continue
        photos.append((index, info, np.ascontiguousarray(image[:, :, :3])))
    return photos


def _random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Resize so the short side is 1.25-2x ``size`` (random), then cut a random ``size`` square."""
    height, width = photo.shape[:2]
    scale = rng.uniform(*_SCALE_RANGE) * size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(photo, (new_width, new_height), interpolation=interpolation)
    top = int(rng.integers(0, new_height - size + 1))
    left = int(rng.integers(0, new_width - size + 1))
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def _gray3(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _edge_sketch(rgb: np.ndarray) -> np.ndarray:
    """Canny edges as black lines on white, 3 channels, like the edges2shoes inputs."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    blurred = cv2.GaussianBlur(gray, (5, 5), 1.0)  # suppress texture noise so outlines dominate
    # Thresholds follow each crop's contrast (Otsu), so dark and bright crops both get outlines.
    otsu, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    high = max(float(otsu), 30.0)
    edges = cv2.Canny(blurred, 0.5 * high, high)
    return np.repeat((255 - edges)[:, :, None], 3, axis=2)


def _write_readme(out_dir: Path, splits: dict[str, list[DemoPhoto]], size: int, crops: int, seed: int) -> None:
    lines = [
        "i2i demo data: small real paired data sets in the aligned pix2pix format (A|B, A left).",
        "",
        f"Made by i2i.data.demo.make_paired_demo(size={size}, crops_per_photo={crops}, seed={seed}).",
        "",
        "edges2photo/{train,val,test}/*.png   A = Canny edge sketch (black on white), B = photo",
        "gray2color/{train,val,test}/*.png    A = grayscale photo (3 channels),      B = photo",
        "",
        "Each photo is resized so its short side is 1.25-2x the crop size, then cropped at random.",
        "val and test crops come from photos that train never sees.",
        "",
        "Photos (split: name, source, credit):",
    ]
    for split, infos in splits.items():
        for info in infos:
            lines.append(f"  {split:5s}  {info.name:10s}  {info.source}  [{info.package}]  {info.credit}")
    (out_dir / "README.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_sizes(size: int, crops_per_photo: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise DataError(f"size must be an integer >= 16 pixels, got {size!r}")
    if isinstance(crops_per_photo, bool) or not isinstance(crops_per_photo, (int, np.integer)) or crops_per_photo < 1:
        raise DataError(f"crops_per_photo must be an integer >= 1, got {crops_per_photo!r}")


def make_paired_demo(
    out_dir: str | os.PathLike,
    *,
    size: int = 256,
    crops_per_photo: int = 6,
    seed: int = 0,
) -> Path:
    """Build the ``edges2photo`` and ``gray2color`` demo sets from packaged photos.

    Args:
        out_dir: output folder; gets ``edges2photo/``, ``gray2color/`` and ``README.txt``.
            Existing files of the same names are overwritten, nothing else is touched.
        size: crop size in pixels; each written pair is ``size x 2*size`` (``H x W``), RGB uint8.
        crops_per_photo: random crops cut from every photo (in every split).
        seed: makes the photo split and the crops reproducible.

    Returns:
        ``out_dir``. With all 5 photos: 3 train photos, 1 val photo, 1 test photo, so
        ``3 * crops_per_photo`` train pairs and ``crops_per_photo`` val and test pairs per set.

    Raises:
        ValueError: ``size < 16`` or ``crops_per_photo < 1``.
        DataError: fewer than 3 photos could be loaded (install scikit-image).
    """
    _check_sizes(size, crops_per_photo)
    photos = load_demo_photos()
    if len(photos) < _MIN_PHOTOS:
        raise DataError(
            f"only {len(photos)} demo photo(s) could be loaded, at least {_MIN_PHOTOS} are needed "
            "(one each for train, val and test); install scikit-image"
        )

    # Hold out one photo for val and one for test; the rest (catalogue order) is train.
    order = np.random.default_rng(seed).permutation(len(photos))
    split_of = {int(order[0]): "val", int(order[1]): "test"}
    splits: dict[str, list[DemoPhoto]] = {"train": [], "val": [], "test": []}

    out_dir = Path(out_dir)
    for position, (catalogue_index, info, photo) in enumerate(photos):
        split = split_of.get(position, "train")
        splits[split].append(info)
        rng = np.random.default_rng([seed, catalogue_index])
        for k in range(crops_per_photo):
            crop = _random_crop(photo, size, rng)
            name = f"{info.name}_{k:03d}.png"
            write_image(out_dir / "edges2photo" / split / name, np.concatenate([_edge_sketch(crop), crop], axis=1))
            write_image(out_dir / "gray2color" / split / name, np.concatenate([_gray3(crop), crop], axis=1))
    _write_readme(out_dir, splits, size, crops_per_photo, seed)
    return out_dir


def warm_grade(rgb: np.ndarray) -> np.ndarray:
    """A warm, faded 'film' colour grade: the domain B of the unpaired demo.

    Lifted blacks, softened contrast, lower saturation and a red-yellow cast; uint8 RGB in and out.
    """
    x = rgb.astype(np.float32) / 255.0
    gray = x.mean(axis=2, keepdims=True)
    x = gray + 0.7 * (x - gray)  # desaturate
    x = 0.08 + 0.84 * x  # lift blacks, lower whites
    x = x * np.array([1.12, 1.0, 0.78], np.float32) + np.array([0.03, 0.01, 0.0], np.float32)
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def make_unpaired_demo(
    out_dir: str | os.PathLike,
    *,
    size: int = 128,
    crops_per_photo: int = 6,
    seed: int = 0,
) -> Path:
    """Build the unpaired ``photo2warm`` set for CycleGAN from packaged photos.

    Domain A holds natural-colour crops, domain B crops of *other* photos after :func:`warm_grade`,
    so no image has a partner. Layout ``trainA/ trainB/ testA/ testB/`` under
    ``out_dir/photo2warm``; the test domains come from photos that training never sees.
    Returns the ``photo2warm`` folder.
    """
    _check_sizes(size, crops_per_photo)
    photos = load_demo_photos()
    if len(photos) < 4:
        raise DataError(
            f"only {len(photos)} demo photo(s) could be loaded, at least 4 are needed "
            "(two per domain); install scikit-image"
        )
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(photos))]
    test, train = order[:2], order[2:]
    half = len(train) // 2
    assignment = {train[i]: ("train", "A" if i < half else "B") for i in range(len(train))}
    assignment[test[0]], assignment[test[1]] = ("test", "A"), ("test", "B")
    root = Path(out_dir) / "photo2warm"
    for position, (catalogue_index, info, photo) in enumerate(photos):
        split, domain = assignment[position]
        rng = np.random.default_rng([seed, catalogue_index, 1])
        for k in range(crops_per_photo):
            crop = _random_crop(photo, size, rng)
            image = crop if domain == "A" else warm_grade(crop)
            write_image(root / f"{split}{domain}" / f"{info.name}_{k:03d}.png", image)
    (root / "README.txt").write_text(
        "i2i unpaired demo: domain A = natural-colour photo crops, domain B = warm-graded crops of other\n"
        f"photos (i2i.data.demo.warm_grade). Made by make_unpaired_demo(size={size}, "
        f"crops_per_photo={crops_per_photo}, seed={seed}).\n",
        encoding="utf-8",
    )
    return root
