"""Translate one image or a folder tree of images with a :class:`~i2i.inference.translator.Translator`.

* The output tree mirrors the input's (recursive); ``suffix`` and ``ext`` change the file names
  and the format, ``quality`` sets JPEG/WebP quality.
* Resumable: outputs already present are skipped unless ``overwrite``. Files are written
  atomically (a hidden temporary file renamed into place), so an interrupted run never leaves a
  half-written image and the next run simply carries on.
* Decoding, inference and encoding overlap: reader threads decode ahead of the device and writer
  threads encode behind it, joined by bounded queues. Images of the same size that come one after
  another are translated as a batch.
* A file that cannot be read, translated or written is reported with its path and the reason; the
  rest of the folder is still processed and the report lists the failures. Images whose header
  declares more than ``max_pixels`` (:func:`i2i.data.io.max_pixel_limit`) are such failures.
* Every output name is planned before anything is written: two inputs that would be written to
  the same output (``a.png`` and ``a.jpg`` with ``ext="webp"``, or names that differ only by case
  on a disk that ignores case) are refused with the list.
* Files in the folder that are not of a supported image type (``notes.txt``, ``clip.gif``) are
  left out and listed in the report's summary (how many, and the first names); they are not
  failures.
* With a paired pix2pix generator, inputs exactly twice as wide as high (the first few checked, all
  of them) look like the A|B pairs of a pix2pix data set: a warning says that each is translated as
  one picture and that ``i2i test`` translates the A halves and compares them with B.
* An input's ICC profile and EXIF go into its output where the format holds them
  (:func:`i2i.data.io.read_metadata`, ``write_image(metadata=...)``), the EXIF orientation reset
  to 1 since the pixels were turned upright when read.
* A multi-frame input (multi-page TIFF, animated PNG/GIF/WebP) is translated from its first frame
  only, as OpenCV decodes it; the report notes each such file and its frame count.
* A full, read-only or forbidden disk stops the run with one error naming the file and the
  problem, since every later write would fail the same way; what was written stays (resumable).
  A model that produces NaN/inf (:class:`~i2i.errors.ModelError`) stops it too.
* The output folder may not lie inside the input folder unless ``allow_inside_input``; even then
  no input is ever overwritten and no file this run writes is taken as an input.
"""
from __future__ import annotations

import functools
import os
import re
import threading
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from i2i.data.io import (
    IMAGE_EXTENSIONS,
    ImageMetadata,
    count_frames,
    is_image_file,
    list_folder,
    list_images,
    max_pixel_limit,
    read_image,
    read_image_size,
    read_metadata,
    write_image,
    write_problem,
)
from i2i.errors import DataError, ModelError, UsageError, format_problems
from i2i.inference.pipeline import BoundedPool, Prefetcher, ordered_map
from i2i.inference.runner import usable_cores
from i2i.shard import Shard
from i2i.inference.translator import Translator

__all__ = ["FolderReport", "plan_outputs", "translate_path", "translate_pairs", "natural_key"]


_NAMES_SHOWN = 5  # unsupported files named in the summary
_PAIRS_CHECKED = 8  # inputs whose sizes decide whether a folder looks like pix2pix A|B pairs


@dataclass
class FolderReport:
    """What a folder run did: outputs written, outputs skipped (already there), inputs that failed,
    notes on inputs that were translated with a caveat (only the first frame of several), and the
    files left out because they are not of a supported image type."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[tuple[Path, str]] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{len(self.written)} written, {len(self.skipped)} skipped (exist), {len(self.failed)} failed."
        if self.notes:
            text += f" {len(self.notes)} with several frames, of which only the first was translated."
        if self.unsupported:
            names = ", ".join(path.name for path in self.unsupported[:_NAMES_SHOWN])
            more = f" and {len(self.unsupported) - _NAMES_SHOWN} more" if len(self.unsupported) > _NAMES_SHOWN else ""
            text += (f" {len(self.unsupported)} other file(s) left out, not a supported image type "
                     f"({', '.join(IMAGE_EXTENSIONS)}): {names}{more}.")
        return text


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame_2`` before ``frame_10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _normalise_ext(ext: str | None) -> str | None:
    if ext is None:
        return None
    ext = ext if ext.startswith(".") else "." + ext
    if ext.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"Output format {ext!r} is not supported; use one of {', '.join(IMAGE_EXTENSIONS)}.")
    return ext


def plan_outputs(
    input_path: Path,
    output_path: Path,
    *,
    suffix: str = "",
    ext: str | None = None,
    allow_inside_input: bool = False,
    recursive: bool = True,
    natural_order: bool = False,
) -> list[tuple[Path, Path]]:
    """Pairs (input file, output file).

    Raises :class:`~i2i.errors.DataError` for a missing input, a folder without images and an output
    that would hit an input, and :class:`~i2i.errors.UsageError` for an unsupported ``ext``.

    ``input_path`` is an image file or a folder (searched recursively unless ``recursive=False``).
    For a folder, ``output_path`` is a folder that mirrors it; for a file, ``output_path`` is the
    output file when it has an image extension, otherwise the folder to write into.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise DataError(f"Input {str(input_path)!r} does not exist.")
    ext = _normalise_ext(ext)

    def target(rel: Path) -> Path:
        return rel.with_name(rel.stem + suffix + (ext or rel.suffix))

    if input_path.is_file():
        if not is_image_file(input_path):
            raise DataError(f"Input {str(input_path)!r} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
        out = output_path if output_path.suffix.lower() in IMAGE_EXTENSIONS else output_path / target(Path(input_path.name))
        pairs = [(input_path, out)]
    else:
        pairs = _folder_pairs(input_path, output_path, target, allow_inside_input, recursive, natural_order)
    inputs = {src.resolve() for src, _ in pairs}
    for src, dst in pairs:
        if dst.resolve() in inputs:
            what = "the input" if dst.resolve() == src.resolve() else f"the input {str(dst)!r}"
            raise DataError(
                f"Output {str(dst)!r} would overwrite {what}; choose another output folder, --suffix or --ext."
            )
    _check_collisions(pairs, output_path if input_path.is_dir() else pairs[0][1].parent)
    return pairs


def _ignores_case(folder: Path) -> bool:
    """True when the disk that will hold ``folder`` treats names differing only by case as one.

    Probed without writing: the nearest existing folder (or a parent) whose name has letters is
    looked up with its case swapped.
    """
    probe = folder.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    for candidate in (probe, *probe.parents):
        if candidate.name.swapcase() != candidate.name:
            other = candidate.with_name(candidate.name.swapcase())
            try:
                return other.exists() and os.path.samefile(candidate, other)
            except OSError:
                return False
    return False


def _check_collisions(pairs: Sequence[tuple[Path, Path]], output_folder: Path) -> None:
    """Refuse two inputs that would be written to one output file (nothing is written yet)."""
    if len(pairs) < 2:
        return
    fold = _ignores_case(output_folder)
    groups: dict[str, list[tuple[Path, Path]]] = defaultdict(list)
    for src, dst in pairs:
        groups[str(dst).casefold() if fold else str(dst)].append((src, dst))
    clashes = [group for group in groups.values() if len(group) > 1]
    if not clashes:
        return
    lines = [f"{str(g[0][1])!r} <- " + ", ".join(repr(str(src)) for src, _ in g) for g in clashes]
    case = " (names that differ only by case are one file on this disk)" if fold else ""
    raise DataError(
        f"{len(clashes)} output file(s) would each be written from several inputs{case}, so all but one "
        "result would be lost; nothing was written. Rename those inputs, or leave out --ext so each output "
        "keeps its input's extension:\n" + format_problems(lines)
    )


def _folder_pairs(
    input_path: Path, output_path: Path, target: Callable[[Path], Path], allow_inside_input: bool, recursive: bool,
    natural_order: bool,
) -> list[tuple[Path, Path]]:
    """The pairs of a folder input; see :func:`plan_outputs`."""
    if output_path.suffix.lower() in IMAGE_EXTENSIONS and not output_path.is_dir():
        raise DataError(
            f"Input {str(input_path)!r} is a folder, so the output must be a folder too, not the image "
            f"file name {str(output_path)!r}."
        )
    inside = _inside(output_path, input_path)
    if inside and not allow_inside_input:
        raise DataError(
            f"Output folder {str(output_path)!r} is inside the input folder {str(input_path)!r}; "
            "choose an output folder outside it (or pass --allow-inside-input to write there on purpose)."
        )
    sources = list_images(input_path, recursive=recursive)
    if inside and output_path.resolve() != input_path.resolve():
        sources = [p for p in sources if not _inside(p, output_path)]  # earlier outputs are not inputs
    if natural_order:
        sources = sorted(sources, key=lambda p: natural_key(p.relative_to(input_path)))
    pairs = [(p, output_path / target(p.relative_to(input_path))) for p in sources]
    if inside:
        # With outputs next to inputs, a file that is this run's output is never also an input.
        outputs = {dst.resolve() for _, dst in pairs}
        pairs = [(src, dst) for src, dst in pairs if src.resolve() not in outputs or src.resolve() == dst.resolve()]
    if not pairs:
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {str(input_path)!r}.")
    return pairs


@dataclass
class _Loaded:
    src: Path
    dst: Path
    image: np.ndarray | None = None
    error: str = ""
    note: str = ""
    metadata: ImageMetadata | None = None


def _load(pair: tuple[Path, Path], max_pixels: int) -> _Loaded:
    src, dst = pair
    try:
        loaded = _Loaded(src, dst, read_image(src, max_pixels=max_pixels), metadata=read_metadata(src))
        frames, kind = count_frames(src)
    except (ValueError, OSError) as exc:
        return _Loaded(src, dst, error=str(exc))
    if frames > 1:
        loaded.note = f"only the first of {frames} frames was translated ({kind or 'several images in one file'})"
    return loaded


class _FolderRun:
    """One run of :func:`translate_pairs`: batches to the translator, writes to a thread pool, a
    shared report and progress bar. A disk-level write failure is kept in ``fatal`` and stops it."""

    def __init__(self, translator: Translator, report: FolderReport, *, quality: int | None, writers: int,
                 prefetch: int, bar: tqdm) -> None:
        self.translator, self.report, self.quality, self.bar = translator, report, quality, bar
        self.lock = threading.Lock()
        self.pool = BoundedPool(writers, prefetch, name="i2i-write")
        self.fatal: DataError | None = None

    def fail(self, src: Path, reason: str) -> None:
        with self.lock:
            self.report.failed.append((src, reason))
            self.bar.update()

    def save(self, src: Path, dst: Path, image: np.ndarray, note: str, metadata: ImageMetadata | None) -> None:
        if self.fatal is not None:
            return  # the disk is full or read-only: later writes would fail the same way
        try:
            write_image(dst, image, quality=self.quality, metadata=metadata)
        except (ValueError, OSError) as exc:
            problem = write_problem(exc) if isinstance(exc, OSError) else None
            if problem is None:
                self.fail(src, f"cannot write {str(dst)!r}: {exc}")
            else:
                with self.lock:
                    done = len(self.report.written)
                    kept = (f"the {done} image(s) already written are kept, and the same command carries on "
                            "from there" if done else "nothing was written")
                    self.fatal = self.fatal or DataError(f"cannot write {str(dst)!r}: {problem}; {kept}.")
            return
        with self.lock:
            self.report.written.append(dst)
            if note:
                self.report.notes.append((src, note))
            self.bar.update()

    def flush(self, items: list[_Loaded]) -> None:
        try:
            outputs = self.translator.translate_images([item.image for item in items if item.image is not None])
        except (KeyboardInterrupt, SystemExit, ModelError):
            raise  # a broken model (NaN/inf, wrong scale) fails every image: stop
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop the folder
            if len(items) > 1:  # find the culprit: translate one at a time
                for item in items:
                    self.flush([item])
                return
            self.fail(items[0].src, f"translation failed: {type(exc).__name__}: {exc}")
            return
        for item, output in zip(items, outputs):
            self.pool.submit(self.save, item.src, item.dst, output, item.note, item.metadata)

    def run(self, loaded: Iterable[_Loaded]) -> None:
        """Translate runs of same-size images as batches; every output is written before returning."""
        try:
            batch: list[_Loaded] = []
            batch_key: tuple[tuple[int, ...], np.dtype] | None = None
            for item in loaded:
                if self.fatal is not None:
                    break
                if item.image is None:
                    self.fail(item.src, item.error)
                    continue
                key = (item.image.shape, item.image.dtype)
                if batch and (key != batch_key or len(batch) >= self.translator.batch_size):
                    self.flush(batch)
                    batch = []
                batch_key = key
                batch.append(item)
            if batch and self.fatal is None:
                self.flush(batch)
        finally:
            self.pool.close()  # every translated image is written (atomically) before returning
        if self.fatal is not None:
            raise self.fatal


def translate_pairs(
    translator: Translator,
    pairs: Sequence[tuple[Path, Path]],
    *,
    overwrite: bool = False,
    quality: int | None = None,
    progress: bool = True,
    desc: str = "translate",
    readers: int | None = None,
    writers: int | None = None,
    prefetch: int | None = None,
    max_pixels: int | None = None,
) -> FolderReport:
    """Translate ``(input, output)`` pairs in order; see the module docstring.

    ``readers``/``writers`` threads (default: up to 4, by CPU count) decode and encode; at most
    ``prefetch`` decoded images wait for the device and as many translated ones for the writers.
    Images above ``max_pixels`` (default: :func:`~i2i.data.io.max_pixel_limit`) are refused unread.

    Raises :class:`~i2i.errors.DataError` when the output disk is full, read-only or forbidden and
    :class:`~i2i.errors.ModelError` when the model produces NaN/inf; other failures are per file.
    """
    load = functools.partial(_load, max_pixels=max_pixel_limit(max_pixels))
    report = FolderReport()
    todo = []
    for src, dst in pairs:
        if dst.exists() and not overwrite:
            report.skipped.append(dst)
        else:
            todo.append((src, dst))
    if not todo:
        return report
    cores = usable_cores()
    readers = readers or max(1, min(4, cores))
    writers = writers or max(1, min(4, cores))
    prefetch = prefetch or max(4, 2 * translator.batch_size)
    with tqdm(total=len(todo), disable=not progress, unit="img", desc=desc, dynamic_ncols=True) as bar:
        run = _FolderRun(translator, report, quality=quality, writers=writers, prefetch=prefetch, bar=bar)
        with Prefetcher(ordered_map(load, todo, workers=readers, window=prefetch), prefetch, name="i2i-read") as loaded:
            run.run(loaded)
    # Threads finish in any order; report in the input order.
    out_order = {dst: i for i, (_, dst) in enumerate(pairs)}
    in_order = {src: i for i, (src, _) in enumerate(pairs)}
    report.written.sort(key=lambda p: out_order.get(p, 0))
    report.failed.sort(key=lambda f: in_order.get(f[0], 0))
    report.notes.sort(key=lambda f: in_order.get(f[0], 0))
    return report


def looks_like_side_by_side_pairs(translator: Translator, sources: Sequence[Path]) -> bool:
    """True when ``translator`` is a paired pix2pix generator and the first inputs are all exactly
    twice as wide as high, like the A|B images of a pix2pix data set (sizes from the headers)."""
    info = translator.info
    paired = info.task == "pix2pix" or info.source == "pytorch-CycleGAN-and-pix2pix UnetGenerator"
    if not paired or translator.scale != 1 or not sources:
        return False
    for path in sources[:_PAIRS_CHECKED]:
        try:
            height, width = read_image_size(path)
        except (ValueError, OSError):
            return False
        if width != 2 * height:
            return False
    return True


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
    allow_inside_input: bool = False,
    recursive: bool = True,
    natural_order: bool = False,
    desc: str = "translate",
    max_pixels: int | None = None,
    shard: Shard | None = None,
) -> FolderReport:
    """Translate an image file or every image below a folder; see the module docstring.

    With ``shard`` (several processes under torchrun) every process plans all outputs the same
    way and translates only its own share of them; the report covers that share.
    """
    limit = max_pixel_limit(max_pixels)  # a bad I2I_MAX_PIXELS is reported before any work
    pairs = plan_outputs(
        Path(input_path), Path(output_path), suffix=suffix, ext=ext, allow_inside_input=allow_inside_input,
        recursive=recursive, natural_order=natural_order,
    )
    if looks_like_side_by_side_pairs(translator, [src for src, _ in pairs]):
        warnings.warn(
            f"{str(pairs[0][0])!r} is twice as wide as high, like the A|B pairs of a pix2pix data set, and is "
            "translated as one picture (both halves together); to translate the A halves and compare the "
            "results with B, use `i2i test RUN_OR_MODEL --data DATASET_ROOT` instead.",
            UserWarning,
            stacklevel=2,
        )
    if shard is not None:
        pairs = shard.take(pairs)
    report = translate_pairs(
        translator, pairs, overwrite=overwrite, quality=quality, progress=progress, desc=desc, max_pixels=limit
    )
    if Path(input_path).is_dir():
        report.unsupported = list_folder(input_path, recursive=recursive)[1]
    return report

