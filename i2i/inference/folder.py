"""Translate one image or a folder tree of images with a :class:`~i2i.inference.translator.Translator`.

The output tree mirrors the input's; outputs already present are skipped unless ``overwrite``;
files are written atomically; an input is never overwritten; a file that fails is reported and the
rest go on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from i2i.data.io import IMAGE_EXTENSIONS, is_image_file, list_images, read_image, write_image
from i2i.inference.translator import Translator

__all__ = ["FolderReport", "plan_outputs", "translate_path"]


@dataclass
class FolderReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def plan_outputs(input_path: Path, output_path: Path, *, suffix: str = "", ext: str | None = None) -> list[tuple[Path, Path]]:
    """Pairs (input file, output file). Raises ValueError when an output would hit an input."""
    if not input_path.exists():
        raise ValueError(f"Input {str(input_path)!r} does not exist.")
    if ext is not None and not ext.startswith("."):
        ext = "." + ext
    if ext is not None and ext.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"Output format {ext!r} is not supported; use one of {', '.join(IMAGE_EXTENSIONS)}.")

    def target(rel: Path) -> Path:
        return rel.with_name(rel.stem + suffix + (ext or rel.suffix))

    if input_path.is_file():
        if not is_image_file(input_path):
            raise ValueError(f"Input {str(input_path)!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
        out = output_path if output_path.suffix.lower() in IMAGE_EXTENSIONS else output_path / target(Path(input_path.name))
        pairs = [(input_path, out)]
    else:
        if _inside(output_path, input_path):
            raise ValueError(
                f"Output folder {str(output_path)!r} is inside the input folder {str(input_path)!r}; "
                "choose an output folder outside it so inputs are never overwritten or re-read."
            )
        pairs = [(p, output_path / target(p.relative_to(input_path))) for p in list_images(input_path)]
        if not pairs:
            raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {str(input_path)!r}.")
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise ValueError(f"Output {str(dst)!r} would overwrite the input; choose another output path.")
    return pairs


def translate_path(
    translator: Translator,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    suffix: str = "",
    ext: str | None = None,
    quality: int | None = None,
    progress: bool = True,
) -> FolderReport:
    """Translate an image file or every image below a folder; see the module docstring."""
    pairs = plan_outputs(Path(input_path), Path(output_path), suffix=suffix, ext=ext)
    report = FolderReport()
    with tqdm(pairs, disable=not progress, unit="img", desc="translate", dynamic_ncols=True) as bar:
        for src, dst in bar:
            if dst.exists() and not overwrite:
                report.skipped.append(dst)
                continue
            try:
                write_image(dst, translator.translate_image(read_image(src)), quality=quality)
            except (ValueError, OSError) as exc:
                report.failed.append((src, str(exc)))
                continue
            report.written.append(dst)
    return report
