"""Build the aligned pix2pix format (A and B side by side in one image) from two folders.

``A_DIR`` and ``B_DIR`` hold the two halves of each pair under the same relative path and file
stem, possibly in sub-folders (``A/train/0001.jpg`` pairs with ``B/train/0001.png``). The result
``OUT/train/0001.png`` is ``[A | B]``: A on the left, B on the right, the layout the pix2pix data
sets (facades, maps, edges2shoes, ...) use.

Everything is checked before the first file is written: unmatched names, two files with the same
stem in one folder, pairs of different sizes and outputs that already exist (unless
``overwrite``) are all listed in one ``DataError``. An input is never overwritten, not even with
``overwrite`` (an output name may lead to an input through a symbolic link). A full or read-only
disk stops the run with one ``DataError`` naming the file. When the
halves differ in format they are brought to a common one losslessly: gray becomes 3-channel RGB,
an image without alpha gets an opaque alpha if the other half has one, and 8-bit samples become
16-bit (``v * 257``) if the other half is 16-bit.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from i2i.data.io import list_images, read_image, read_image_size, write_image, write_problem
from i2i.errors import DataError, format_problems

__all__ = ["combine_folders", "combine_pair"]

def _stem_key(path: Path, root: Path) -> str:
    """Relative path without extension, in POSIX form: the key that pairs A and B files."""
    return path.relative_to(root).with_suffix("").as_posix()


def _index(images: list[Path], root: Path, label: str, problems: list[str]) -> dict[str, Path]:
    """Map stem keys to files; two files sharing a key (x.png and x.jpg) are a problem."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in images:
        groups[_stem_key(path, root)].append(path)
    for key, paths in groups.items():
        if len(paths) > 1:
            names = ", ".join(f"'{p}'" for p in paths)
            problems.append(f"{label} has several files for '{key}': {names}; keep one")
    return {key: paths[0] for key, paths in groups.items()}


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _match_formats(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring two ``(H, W, C)`` images to the same dtype and channel count, losslessly."""
    if a.dtype != b.dtype:  # only uint8 vs uint16 can occur: widen the 8-bit one
        a, b = (x.astype(np.uint16) * 257 if x.dtype == np.uint8 else x for x in (a, b))
    channels = max(a.shape[2], b.shape[2])
    opaque = np.iinfo(a.dtype).max

    def widen(x: np.ndarray) -> np.ndarray:
        if x.shape[2] == channels:
            return x
        if x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if channels == 4 and x.shape[2] == 3:
            x = np.concatenate([x, np.full(x.shape[:2] + (1,), opaque, dtype=x.dtype)], axis=2)
        return x

    return widen(a), widen(b)


def combine_pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Put two images of the same size side by side.

    Args:
        a: ``(H, W, Ca)`` uint8/uint16 image (left half).
        b: ``(H, W, Cb)`` uint8/uint16 image (right half).

    Returns:
        ``(H, 2W, C)``: formats matched as described in the module docstring.
    """
    if a.shape[:2] != b.shape[:2]:
        raise DataError(f"combine_pair: sizes differ, A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}")
    a, b = _match_formats(a, b)
    return np.concatenate([a, b], axis=1)


def _check_existing(outputs: dict[str, Path], inputs: list[Path], overwrite: bool, problems: list[str]) -> None:
    """Outputs that exist: never an input (a link may lead there); others only with ``overwrite``."""
    input_files = {path.resolve() for path in inputs}
    existing = [path for path in outputs.values() if path.exists() or path.is_symlink()]
    for path in existing:
        if path.resolve() in input_files:
            problems.append(f"output '{path}' leads to an input file, which is never overwritten; choose another OUT folder")
    if not overwrite:
        others = [path for path in existing if path.resolve() not in input_files]
        problems.extend(f"output '{path}' exists; pass --overwrite to replace it" for path in others)


def _raise_problems(a_dir: Path, b_dir: Path, problems: list[str]) -> None:
    raise DataError(
        f"cannot combine '{a_dir}' and '{b_dir}': {len(problems)} problem(s), nothing was written:\n"
        + format_problems(problems, bullet="- ")
    )


def _write_pairs(
    keys: list[str], a_index: dict[str, Path], b_index: dict[str, Path], outputs: dict[str, Path], progress: bool
) -> list[Path]:
    """Read, combine and write each checked pair; a disk that fails is one DataError naming the file."""
    from tqdm.auto import tqdm

    written: list[Path] = []
    for key in tqdm(keys, desc="combine", unit="pair", disable=not progress):
        a_image, b_image = read_image(a_index[key]), read_image(b_index[key])
        if a_image.shape[:2] != b_image.shape[:2]:  # header and decoder disagreed: rare, still say which
            raise DataError(
                f"size mismatch for '{key}': '{a_index[key]}' decodes to {a_image.shape[0]}x{a_image.shape[1]}, "
                f"'{b_index[key]}' to {b_image.shape[0]}x{b_image.shape[1]}"
            )
        try:
            write_image(outputs[key], combine_pair(a_image, b_image))
        except OSError as error:
            problem = write_problem(error) or (error.strerror or str(error))
            raise DataError(
                f"cannot write '{outputs[key]}': {problem}; the {len(written)} pair(s) written before it are kept"
            ) from None
        written.append(outputs[key])
    return written


def combine_folders(
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    progress: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write every matched A/B pair as one aligned ``A|B`` PNG.

    Args:
        a_dir: folder of A images (the pix2pix input side), searched recursively.
        b_dir: folder of B images (the target side), same relative paths and stems as A.
        out_dir: output folder; sub-folders of A (``train/``, ``val/``, ``test/``) are mirrored.
            Must not lie inside ``a_dir`` or ``b_dir``.
        progress: show a progress bar on stderr.
        overwrite: replace outputs that already exist (never an input file).

    Returns:
        The written files, sorted: ``out_dir / <relative stem>.png``, each ``(H, 2W, C)``.

    Raises:
        DataError: unmatched names, duplicate stems, size mismatches, outputs that would land
            in an input folder or that exist (without ``overwrite``); all are listed (the first 20
            and a count), before anything is written. Also a disk that is full or read-only.
        FileNotFoundError / NotADirectoryError: an input folder is missing.
        ImageReadError: an image cannot be read.
    """
    a_dir, b_dir, out_dir = Path(a_dir), Path(b_dir), Path(out_dir)
    a_images, b_images = list_images(a_dir), list_images(b_dir)
    if not a_images:
        raise DataError(f"no images found in A folder '{a_dir}' (extensions: png, jpg, bmp, tif, webp)")
    if not b_images:
        raise DataError(f"no images found in B folder '{b_dir}' (extensions: png, jpg, bmp, tif, webp)")

    problems: list[str] = []
    a_index = _index(a_images, a_dir, "A", problems)
    b_index = _index(b_images, b_dir, "B", problems)
    for key in sorted(a_index.keys() - b_index.keys()):
        problems.append(f"'{a_index[key]}' has no match in B (expected '{b_dir / key}.<ext>')")
    for key in sorted(b_index.keys() - a_index.keys()):
        problems.append(f"'{b_index[key]}' has no match in A (expected '{a_dir / key}.<ext>')")

    keys = sorted(a_index.keys() & b_index.keys())
    a_real, b_real, out_real = a_dir.resolve(), b_dir.resolve(), out_dir.resolve()
    outputs = {key: out_dir / f"{key}.png" for key in keys}
    for key in keys:
        destination = out_real / f"{key}.png"
        if _is_inside(destination, a_real) or _is_inside(destination, b_real):
            problems.append(
                f"output '{outputs[key]}' would be written inside an input folder; choose an OUT folder outside A and B"
            )
            break  # one line says it all; every other output has the same cause
    _check_existing(outputs, a_images + b_images, overwrite, problems)
    for key in keys:
        a_size, b_size = read_image_size(a_index[key]), read_image_size(b_index[key])
        if a_size != b_size:
            problems.append(
                f"size mismatch for '{key}': '{a_index[key]}' is {a_size[0]}x{a_size[1]} (HxW), "
                f"'{b_index[key]}' is {b_size[0]}x{b_size[1]}"
            )
    if problems:
        _raise_problems(a_dir, b_dir, problems)

    return _write_pairs(keys, a_index, b_index, outputs, progress)
