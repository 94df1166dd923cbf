"""What `i2i eval` measured and how it prints: per-image scores, their means, set-level FID, and
the conventions, as an aligned table, CSV or JSON.

Three reports share one layout: a model and the bicubic baseline against ground truth
(:class:`EvalReport`), a folder of existing outputs against ground truth (:class:`PairReport`),
and the no-reference NIQE of a folder (:class:`NiqeReport`). Every format lists the images
first, then the mean; FID, a distance between two sets of images, comes after the mean.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from i2i.errors import UsageError

__all__ = [
    "FORMATS",
    "ImageScores",
    "EvalReport",
    "PairScores",
    "PairReport",
    "NiqeScore",
    "NiqeReport",
    "format_report",
]

FORMATS = ("table", "csv", "json")

# Column headings and decimals in the table: PSNR in dB to 2 places, the rest to 4.
_HEADINGS = {
    "bicubic_psnr": "bicubic PSNR", "bicubic_ssim": "SSIM", "bicubic_lpips": "LPIPS",
    "model_psnr": "model PSNR", "model_ssim": "SSIM", "model_lpips": "LPIPS",
    "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "niqe": "NIQE",
}


def _mean_of(images: list[Any], keys: tuple[str, ...]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in keys:
        values = [getattr(s, key) for s in images if getattr(s, key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


@dataclass
class ImageScores:
    """Scores of one image; ``model_*`` are None when no model was evaluated, ``*_lpips`` when
    LPIPS was not asked for."""

    image: str
    width: int
    height: int
    bicubic_psnr: float
    bicubic_ssim: float
    bicubic_lpips: float | None = None
    model_psnr: float | None = None
    model_ssim: float | None = None
    model_lpips: float | None = None


@dataclass
class EvalReport:
    """Per-image scores of a model and the bicubic baseline, their means, FID of each set against
    the HR set (when asked for), and the conventions they were measured with."""

    images: list[ImageScores]
    settings: dict[str, Any] = field(default_factory=dict)
    fid: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float | None]:
        return _mean_of(self.images, ("bicubic_psnr", "bicubic_ssim", "bicubic_lpips", "model_psnr", "model_ssim",
                                      "model_lpips"))


@dataclass
class PairScores:
    """Scores of one existing output against its ground truth (``lpips`` None when not asked)."""

    image: str
    width: int
    height: int
    psnr: float
    ssim: float
    lpips: float | None = None


@dataclass
class PairReport:
    """Per-pair scores of a folder of outputs against a ground-truth folder, their means, FID of
    the outputs against the ground truth (when asked), the files left without a partner on each
    side, and the conventions."""

    images: list[PairScores]
    settings: dict[str, Any] = field(default_factory=dict)
    fid: dict[str, float] = field(default_factory=dict)
    unmatched_sr: list[str] = field(default_factory=list)
    unmatched_hr: list[str] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float | None]:
        return _mean_of(self.images, ("psnr", "ssim", "lpips"))


@dataclass
class NiqeScore:
    """The NIQE of one image (lower is more natural)."""

    image: str
    width: int
    height: int
    niqe: float


@dataclass
class NiqeReport:
    """Per-image NIQE, the mean, and the conventions they were measured with."""

    images: list[NiqeScore]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float | None]:
        return _mean_of(self.images, ("niqe",))


Report = EvalReport | PairReport | NiqeReport


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _digits(key: str) -> int:
    return 2 if key.endswith("psnr") else 4


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _columns(report: Report) -> list[str]:
    """The score columns that hold a value for at least one image, in the dataclass's order."""
    names = [f.name for f in fields(type(report.images[0]))] if report.images else []
    return [n for n in names[3:] if any(getattr(s, n) is not None for s in report.images)]


def _title(report: Report) -> str:
    s = report.settings
    if isinstance(report, NiqeReport):
        return (f"# NIQE (lower is better), {s.get('channel')}, border crop {s.get('border_crop')}, "
                f"blocks {s.get('blocks')}; images: {s.get('images')}")
    if isinstance(report, PairReport):
        return (f"# {s.get('sr')} against {s.get('hr')}: {s.get('channel')}, border crop "
                f"{s.get('border_crop')}; pairs matched by {s.get('matching')}")
    return (f"# x{s.get('scale')}, {s.get('channel')}, border crop {s.get('border_crop')}, {s.get('rounding')}; "
            f"LR: {s.get('lr')}")


def _footer(report: Report) -> list[str]:
    """FID and unmatched files, as '# ...' lines after the table."""
    lines = [f"# FID {name}: {value:.4f}" for name, value in getattr(report, "fid", {}).items()]
    for side in ("sr", "hr"):
        unmatched = getattr(report, f"unmatched_{side}", [])
        if unmatched:
            lines.append(f"# {len(unmatched)} {side.upper()} file(s) without a partner: {', '.join(unmatched)}")
    return lines


def _csv(report: Report, columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "width", "height", *columns])
    for s in report.images:
        writer.writerow([s.image, s.width, s.height] + [getattr(s, c) for c in columns])
    mean = report.mean
    writer.writerow(["mean", "", ""] + [mean[c] for c in columns])
    for name, value in getattr(report, "fid", {}).items():
        writer.writerow([f"fid_{name}", "", "", value])
    return buffer.getvalue().rstrip("\n")


def _json(report: Report) -> str:
    data: dict[str, Any] = {"settings": report.settings, "images": [asdict(s) for s in report.images],
                            "mean": report.mean}
    if isinstance(report, (EvalReport, PairReport)):
        data["fid"] = report.fid
    if isinstance(report, PairReport):
        data["unmatched"] = {"sr": report.unmatched_sr, "hr": report.unmatched_hr}
    return json.dumps(data, indent=2)


def format_report(report: Report, fmt: str = "table") -> str:
    """The report as an aligned text table, CSV or JSON (per image, then the mean, then FID)."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    if fmt == "json":
        return _json(report)
    columns = _columns(report)
    if fmt == "csv":
        return _csv(report, columns)
    rows = [[s.image, f"{s.width}x{s.height}"] + [_fmt(getattr(s, c), _digits(c)) for c in columns]
            for s in report.images]
    mean = report.mean
    rows.append(["mean", ""] + [_fmt(mean[c], _digits(c)) for c in columns])
    header = ["image", "size"] + [_HEADINGS[c] for c in columns]
    return "\n".join([_title(report), *_table(header, rows), *_footer(report)])
