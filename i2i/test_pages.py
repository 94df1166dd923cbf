"""``i2i test``: a generator over a data set's test split, with pytorch-CycleGAN-and-pix2pix's
results page.

As that project's ``test.py`` writes it: ``RESULTS/NAME/<phase>_<epoch>/index.html`` with an
``images/`` folder, one heading per test image and a row of ``real_A | fake_B | real_B`` under it
(``<name>_real_A.png`` ...). ``real_A`` is the network's input and ``real_B`` its target whatever
the direction: ``BtoA`` swaps the halves of a pair, as that project's loaders do. Where the split
has targets (pix2pix pairs), each image gets its L1, PSNR and SSIM (:func:`i2i.metrics.image_metrics`,
RGB in [0, 1], no border crop: the training-time validation metrics), measured on the 8/16-bit
images as written, and the page opens with their means.

Splits, looked up in this order under the data root: ``<phase>/`` (aligned ``A|B`` pairs, with
``val/`` standing in for a missing ``test/``), ``A/<phase>`` with ``B/<phase>`` (pairs matched by
name), ``<phase>A/`` and ``<phase>B/`` (CycleGAN's unpaired domains: inputs only).
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from i2i.data.io import list_images, read_image, write_image
from i2i.errors import DataError, UsageError
from i2i.files import atomic_write_bytes
from i2i.imageops import convert_channels, split_pair

if TYPE_CHECKING:
    from i2i.inference.translator import Translator

__all__ = [
    "TestItem", "TestSplit", "TestResult", "find_test_split", "default_name", "measure", "run_test",
    "write_test_page", "check_results_folder", "check_outside",
]

METRICS = ("l1", "psnr", "ssim")
# pytorch-CycleGAN-and-pix2pix's file names: <epoch>_net_G.pth, <epoch>_net_G_A.pth ...
_JUNYANZ_FILE = re.compile(r"^(?P<epoch>latest|\d+)_net_G(_[AB])?$")
_GENERIC_STEMS = re.compile(r"^(generator|G_[AB])(_ema)?$")


@dataclass(frozen=True)
class TestItem:
    """One test image: ``path`` (and ``path_b`` in the folders layout); ``aligned`` says that
    ``path`` holds an ``A|B`` pair side by side."""

    __test__ = False  # not a pytest class

    name: str
    path: Path
    path_b: Path | None = None
    aligned: bool = False

    def load(self, direction: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(real_A, real_B or None)``: the input and the target, swapped for ``BtoA``."""
        b: np.ndarray | None = None
        if self.aligned:
            a, b = split_pair(read_image(self.path))
        else:
            a = read_image(self.path)
            if self.path_b is not None:
                b = read_image(self.path_b)
        if direction == "BtoA" and b is not None:
            return b, a
        return a, b


@dataclass(frozen=True)
class TestSplit:
    """The images of a split and how they were found (``layout``: aligned, folders, unaligned)."""

    __test__ = False  # not a pytest class

    layout: str
    folder: Path
    items: list[TestItem]
    note: str = ""


def _unaligned_split(root: Path, phase: str, direction: str) -> TestSplit:
    folder = root / f"{phase}{'A' if direction == 'AtoB' else 'B'}"
    if not folder.is_dir():
        raise DataError(
            f"{str(folder)!r} does not exist; direction {direction} takes its inputs from it "
            f"(found only {phase}{'B' if direction == 'AtoB' else 'A'}/)."
        )
    return TestSplit("unaligned", folder, [TestItem(p.stem, p) for p in list_images(folder)])


def _unique_name(relative: Path) -> str:
    """``sub/a.png`` -> ``sub__a_png``: a file name part that tells apart images of one stem."""
    return "__".join(relative.with_suffix("").parts) + relative.suffix.replace(".", "_")


def find_test_split(root: str | os.PathLike, phase: str, direction: str) -> TestSplit:
    """The test images under ``root`` for ``phase`` (see the module docstring for the layouts).

    Raises:
        DataError: no split of that phase in any layout (the message lists what was looked for),
            or a split without images.
    """
    from i2i.data.datasets import match_pair_folders

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Data root {str(root)!r} does not exist; give --data a data set folder.")
    note = ""
    folder = root / phase
    if not folder.is_dir() and phase == "test" and (root / "val").is_dir() and not (root / "testA").is_dir():
        folder, note = root / "val", f"{root / 'test'} does not exist; using the val split."
    if folder.is_dir():
        split = TestSplit("aligned", folder, [TestItem(p.stem, p, aligned=True) for p in list_images(folder)], note)
    elif (root / "A" / phase).is_dir() or (root / "B" / phase).is_dir():
        pairs = match_pair_folders(root / "A" / phase, root / "B" / phase)
        split = TestSplit("folders", root / "A" / phase, [TestItem(a.stem, a, b) for a, b in pairs])
    elif (root / f"{phase}A").is_dir() or (root / f"{phase}B").is_dir():
        split = _unaligned_split(root, phase, direction)
    else:
        raise DataError(
            f"No {phase!r} split in {str(root)!r}: expected {phase}/ (pix2pix A|B pairs), A/{phase}/ and "
            f"B/{phase}/ (pairs by name) or {phase}A/ and {phase}B/ (CycleGAN); choose the split with --phase."
        )
    if not split.items:
        raise DataError(f"No images in {str(split.folder)!r} (the {phase!r} split).")
    names = [item.name for item in split.items]
    if len(set(names)) != len(names):  # a.png beside a.jpg, or sub/a.png beside a.png
        split = TestSplit(split.layout, split.folder, [
            TestItem(_unique_name(i.path.relative_to(split.folder)), i.path, i.path_b, i.aligned) for i in split.items
        ], split.note)
    return split


def default_name(model: str | os.PathLike) -> tuple[str, str]:
    """``(name, epoch)`` for the results folder: a run folder's name; for a file its stem, or its
    folder's name when the stem is generic (``generator``, ``G_A``, ``latest_net_G`` ...). The
    epoch is pytorch-CycleGAN-and-pix2pix's (``200`` for ``200_net_G.pth``), else ``latest``."""
    path = Path(model)
    if path.is_dir():
        return path.resolve().name, "latest"
    match = _JUNYANZ_FILE.match(path.stem)
    epoch = match.group("epoch") if match else "latest"
    generic = match or _GENERIC_STEMS.match(path.stem)
    folder = path.resolve().parent.name if path.exists() else ""
    return (folder if generic and folder else path.stem), epoch


@dataclass
class TestResult:
    """What :func:`run_test` wrote: the page, and per image its name and scores (empty without a target)."""

    __test__ = False  # not a pytest class

    page: Path
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    def mean(self) -> dict[str, float]:
        """The mean of each metric over the images that have a target."""
        if not self.scores:
            return {}
        return {m: float(np.mean([s[m] for s in self.scores.values()])) for m in METRICS}


def measure(fake: np.ndarray, real: np.ndarray) -> dict[str, float] | None:
    """L1, PSNR and SSIM of two images as written (8 or 16 bits), by :func:`i2i.metrics.image_metrics`
    on RGB in [0, 1]; None when their sizes differ (an upscaler against a same-size target)."""
    from i2i.imageops import image_to_tensor
    from i2i.metrics import image_metrics

    if fake.shape[:2] != real.shape[:2]:
        return None
    channels = 3 if (fake.ndim == 3 and fake.shape[2] >= 3) or (real.ndim == 3 and real.shape[2] >= 3) else 1
    pred = image_to_tensor(convert_channels(fake, channels), (0.0, 1.0))[None]
    target = image_to_tensor(convert_channels(real, channels), (0.0, 1.0))[None]
    return image_metrics(pred, target)


def run_test(
    translator: "Translator", split: TestSplit, out_dir: Path, *, direction: str, num_test: int, title: str,
    notes: list[str], progress: bool = True,
) -> TestResult:
    """Translate the first ``num_test`` items of ``split`` (sorted, as test.py's ``--num_test``),
    write ``out_dir/images/<name>_{real_A,fake_B,real_B}.png`` and ``out_dir/index.html``, with a
    progress bar. The page is written last, so a finished page means a finished test."""
    from tqdm import tqdm

    items = split.items[:num_test]
    result = TestResult(out_dir / "index.html")
    rows: list[tuple[str, dict[str, str], dict[str, float] | None]] = []
    for item in tqdm(items, desc="test", unit="image", disable=not progress, dynamic_ncols=True):
        real_a, real_b = item.load(direction)
        fake_b = translator.translate_image(real_a)
        images = {"real_A": real_a, "fake_B": fake_b}
        if real_b is not None:
            images["real_B"] = real_b
        files = {}
        for label, image in images.items():
            files[label] = f"images/{item.name}_{label}.png"
            write_image(out_dir / files[label], image)
        scores = measure(fake_b, real_b) if real_b is not None else None
        if scores is not None:
            result.scores[item.name] = scores
        result.names.append(item.name)
        rows.append((item.name, files, scores))
    write_test_page(result.page, rows, title=title, means=result.mean(), notes=notes)
    return result


def _scores_line(scores: dict[str, float]) -> str:
    return f"L1 {scores['l1']:.4f} &nbsp; PSNR {scores['psnr']:.2f} dB &nbsp; SSIM {scores['ssim']:.4f}"


def write_test_page(
    page: Path, rows: list[tuple[str, dict[str, str], dict[str, float] | None]], *, title: str,
    means: dict[str, float], notes: list[str], width: int = 256,
) -> Path:
    """The results page, atomically: the title, ``notes`` and the mean scores, then per image a
    heading, its scores and a row of its images (each linked to the file, captioned by label)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes if n]
    if means:
        cells = "".join(f"<td>{html.escape(m)}</td><td class='mean-{m}'>{means[m]:.4f}</td>" for m in METRICS)
        parts.append(f"<table class='means'><tr><th colspan='6'>mean over {sum(1 for r in rows if r[2])} images"
                     f"</th></tr><tr>{cells}</tr></table>")
    for name, files, scores in rows:
        parts.append(f"<h3>{html.escape(name)}</h3>")
        if scores:
            parts.append(f"<p class='scores'>{_scores_line(scores)}</p>")
        cells = "".join(
            f"<td halign='center' style='word-wrap: break-word;' valign='top'><p><a href='{html.escape(f)}'>"
            f"<img style='width:{width}px' src='{html.escape(f)}'></a><br><p>{html.escape(label)}</p></td>"
            for label, f in files.items()
        )
        parts.append(f"<table border='1' style='table-layout: fixed;'><tr>{cells}</tr></table>")
    parts.append("</body></html>")
    atomic_write_bytes(page, "\n".join(parts).encode())
    return page


def check_results_folder(out_dir: Path, *, overwrite: bool) -> None:
    """Refuse to replace a finished page (``index.html``) unless ``overwrite``."""
    if (out_dir / "index.html").exists() and not overwrite:
        raise UsageError(
            f"{str(out_dir / 'index.html')!r} already holds a finished test; pass --overwrite to replace it, "
            "or choose another --results-dir or --name."
        )



def check_outside(out_dir: Path, split: TestSplit) -> None:
    """Refuse a results folder inside the split's folder, whose images a later test would read
    as test images."""
    folders = [split.folder, *(i.path_b.parent for i in split.items[:1] if i.path_b is not None)]
    inside = [f for f in folders if out_dir.resolve().is_relative_to(f.resolve())]
    if inside:
        raise UsageError(
            f"The results folder {str(out_dir)!r} is inside the test images' folder {str(inside[0])!r}; "
            "choose a --results-dir outside the data set."
        )
