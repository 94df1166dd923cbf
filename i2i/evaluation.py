"""Super-resolution evaluation with the published conventions.

The SR literature (SRCNN onwards, the SRGAN and EDSR tables, BasicSR's scripts) measures:

- the **low-resolution input** made with MATLAB's ``imresize(HR, 1/s, 'bicubic')`` (antialiased;
  :mod:`i2i.data.resize`) and stored as 8 bits, from the HR image cropped to a multiple of ``s``;
- the **bicubic baseline** ``imresize(LR, s, 'bicubic')``, also as 8 bits;
- **uint8 rounding** of every output before measuring;
- PSNR and SSIM on the **Y channel** of BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` defines it
  (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1], kept in floating point);
- a **border of ``s`` pixels** cropped off every side;
- SSIM as Wang et al.'s reference code: an 11x11 Gaussian window (sigma 1.5), ``K = (0.01, 0.03)``,
  ``L = 255``, over the valid region; on RGB the mean over the three channels.

``y_channel=False`` measures on RGB instead (BasicSR's model-zoo figures), with the same crop.

**No reference.** :func:`evaluate_niqe` scores a folder of images (SR outputs, say) with NIQE
(:mod:`i2i.niqe`), which needs no ground truth: lower is more natural.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from i2i.imageops import convert_channels, to_uint8
from i2i.data.io import list_images, read_image, read_image_size
from i2i.data.resize import imresize_array
from i2i.errors import DataError, UsageError, format_problems
from i2i.niqe import BLOCK, niqe

__all__ = [
    "FORMATS",
    "ImageScores",
    "EvalReport",
    "NiqeScore",
    "NiqeReport",
    "rgb_to_y",
    "modcrop",
    "crop_border",
    "psnr",
    "ssim",
    "sr_scores",
    "make_lr",
    "bicubic_upscale",
    "evaluate_sr",
    "evaluate_niqe",
    "format_report",
]

FORMATS = ("table", "csv", "json")


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8/uint16 gray, RGB or RGBA -> uint8 RGB (alpha dropped, 16 bits scaled)."""
    return np.ascontiguousarray(convert_channels(to_uint8(image), 3))


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an ``(H, W, 3)`` uint8 RGB image as MATLAB's ``rgb2ycbcr``: float64 in [16, 235]."""
    rgb = image.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so height and width are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from every side of an ``(H, W[, C])`` array."""
    if border == 0:
        return image
    return image[border:-border, border:-border]


def psnr(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """PSNR in dB of two same-shape arrays on a ``[0, max_value]`` scale (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(max_value**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)[None, None]


def _ssim_plane(a: torch.Tensor, b: torch.Tensor, max_value: float) -> float:
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    window = _gaussian_window()
    a, b = a[None, None], b[None, None]

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window)  # "valid": no padding, as the reference code

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """SSIM of ``(H, W)`` or ``(H, W, C)`` arrays (mean over channels), Wang et al.'s settings.

    Needs at least 11x11 pixels (the Gaussian window).
    """
    if a.shape != b.shape:
        raise DataError(f"ssim: shapes differ, {a.shape} and {b.shape}.")
    if min(a.shape[:2]) < 11:
        raise DataError(f"ssim needs images of at least 11x11 pixels after the border crop, got {a.shape[1]}x{a.shape[0]}.")
    ta = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    tb = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64))
    if ta.ndim == 2:
        return _ssim_plane(ta, tb, max_value)
    return float(np.mean([_ssim_plane(ta[..., c], tb[..., c], max_value) for c in range(ta.shape[-1])]))


def sr_scores(output: np.ndarray, hr: np.ndarray, *, border: int, y_channel: bool = True) -> tuple[float, float]:
    """(PSNR, SSIM) of uint8 RGB ``output`` against ``hr`` with the published conventions."""
    if output.shape != hr.shape:
        raise DataError(f"output {output.shape} and HR {hr.shape} differ in shape.")
    if y_channel:
        a, b = rgb_to_y(output), rgb_to_y(hr)
    else:
        a, b = output.astype(np.float64), hr.astype(np.float64)
    a, b = crop_border(a, border), crop_border(b, border)
    return psnr(a, b), ssim(a, b)


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(HR, 1/scale, 'bicubic')`` of an image already cropped to a multiple of scale."""
    return imresize_array(hr, scale=1.0 / scale, method="bicubic")


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(LR, scale, 'bicubic')``: the baseline every SR table reports."""
    return imresize_array(lr, scale=float(scale), method="bicubic")


@dataclass
class ImageScores:
    """Scores of one image; ``model_*`` are None when no model was evaluated."""

    image: str
    width: int
    height: int
    bicubic_psnr: float
    bicubic_ssim: float
    model_psnr: float | None = None
    model_ssim: float | None = None


@dataclass
class EvalReport:
    """Per-image scores, their means, and the conventions they were measured with."""

    images: list[ImageScores]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float | None]:
        keys = ("bicubic_psnr", "bicubic_ssim", "model_psnr", "model_ssim")
        out: dict[str, float | None] = {}
        for key in keys:
            values = [getattr(s, key) for s in self.images if getattr(s, key) is not None]
            out[key] = float(np.mean(values)) if values else None
        return out


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
        return {"niqe": float(np.mean([s.niqe for s in self.images])) if self.images else None}


def _match_lr(hr_path: Path, hr_dir: Path, lr_files: dict[str, Path], scale: int) -> Path:
    rel = hr_path.relative_to(hr_dir).with_suffix("").as_posix()
    for key in (rel, f"{rel}x{scale}", f"{rel}_x{scale}", f"{rel}_LR"):
        if key in lr_files:
            return lr_files[key]
    raise DataError(
        f"No LR image for {hr_path} in the LR folder: expected the same name (or with an x{scale} "
        f"suffix, as in DIV2K's 0801x{scale}.png)."
    )


def _sr_translator(model: str | os.PathLike | None, scale: int | None, device: str) -> tuple[Any, int]:
    """The model's translator (None for the bicubic baseline alone) and the scale to evaluate at."""
    translator = None
    if model is not None:
        from i2i.inference.translator import Translator

        translator = Translator.from_file(model, device=device)
        model_scale = int(translator.scale)
        if scale is None:
            scale = model_scale
        elif scale != model_scale:
            raise UsageError(f"--scale {scale} does not match the model, which upscales x{model_scale}.")
        if model_scale == 1:
            raise UsageError(f"{model} is not a super-resolution model (its scale is 1).")
    if scale is None:
        raise UsageError("Give --scale when no --model is evaluated.")
    if scale < 1:
        raise UsageError(f"scale must be a positive integer, got {scale}.")
    return translator, scale


def _lr_and_hr(
    hr_path: Path, hr_dir: Path, lr_files: dict[str, Path] | None, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """The LR input (made from HR with MATLAB bicubic when ``lr_files`` is None) and its HR image,
    both uint8 RGB, HR cropped to exactly ``scale`` x the LR size."""
    hr = _as_rgb8(read_image(hr_path))
    if lr_files is None:
        hr = modcrop(hr, scale)
        return make_lr(hr, scale), hr
    lr = _as_rgb8(read_image(_match_lr(hr_path, hr_dir, lr_files, scale)))
    want_h, want_w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < want_h or hr.shape[1] < want_w or hr.shape[0] - want_h >= scale or hr.shape[1] - want_w >= scale:
        raise DataError(
            f"{hr_path} is {hr.shape[1]}x{hr.shape[0]} but its LR image is {lr.shape[1]}x{lr.shape[0]}; "
            f"at x{scale} the HR image should be {want_w}x{want_h} (up to {scale - 1} extra pixels)."
        )
    return lr, hr[:want_h, :want_w]


def evaluate_sr(
    model: str | os.PathLike | None,
    hr_dir: str | os.PathLike,
    *,
    lr_dir: str | os.PathLike | None = None,
    scale: int | None = None,
    y_channel: bool = True,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Score an SR generator and the bicubic baseline on every image of ``hr_dir``.

    ``model`` is anything ``i2i translate --model`` takes (a generator file, a run folder, a
    BasicSR or leftthomas file, a bundled name such as ``x4``), or None for the baseline alone.
    Without ``lr_dir`` the LR inputs are made from the HR images (MATLAB bicubic); with it they
    are read and matched by name. ``scale`` defaults to the model's.
    """
    translator, scale = _sr_translator(model, scale, device)
    hr_dir = Path(hr_dir)
    hr_paths = list_images(hr_dir)
    if not hr_paths:
        raise DataError(f"No images in the HR folder {str(hr_dir)!r}.")
    lr_files: dict[str, Path] = {}
    if lr_dir is not None:
        lr_dir = Path(lr_dir)
        lr_files = {p.relative_to(lr_dir).with_suffix("").as_posix(): p for p in list_images(lr_dir)}

    results = []
    for hr_path in hr_paths:
        lr, hr = _lr_and_hr(hr_path, hr_dir, lr_files if lr_dir is not None else None, scale)
        bicubic = bicubic_upscale(lr, scale)
        b_psnr, b_ssim = sr_scores(bicubic, hr, border=scale, y_channel=y_channel)
        scores = ImageScores(
            image=hr_path.relative_to(hr_dir).as_posix(),
            width=hr.shape[1],
            height=hr.shape[0],
            bicubic_psnr=b_psnr,
            bicubic_ssim=b_ssim,
        )
        if translator is not None:
            output = _as_rgb8(translator.translate_image(lr))
            scores.model_psnr, scores.model_ssim = sr_scores(output, hr, border=scale, y_channel=y_channel)
        results.append(scores)
        if progress is not None:
            progress(scores.image)
    settings = {
        "model": str(model) if model is not None else None,
        "scale": scale,
        "channel": "Y (BT.601, MATLAB rgb2ycbcr)" if y_channel else "RGB",
        "border_crop": scale,
        "lr": str(lr_dir) if lr_dir is not None else "MATLAB bicubic imresize of HR, uint8",
        "rounding": "uint8 before measuring",
    }
    return EvalReport(images=results, settings=settings)


def _niqe_input(image: np.ndarray) -> np.ndarray:
    """A read image as :func:`~i2i.niqe.niqe` takes it: uint8, gray kept gray, alpha dropped."""
    image = to_uint8(image)
    return convert_channels(image, 1 if image.shape[2] == 1 else 3)


def _too_small_for_niqe(paths: list[Path], folder: Path, crop_border: int) -> list[str]:
    """The images that give fewer than two NIQE blocks after the crop, as 'name (WxH)'."""
    small = []
    for path in paths:
        height, width = read_image_size(path)
        if ((height - 2 * crop_border) // BLOCK) * ((width - 2 * crop_border) // BLOCK) < 2:
            small.append(f"{path.relative_to(folder).as_posix()} ({width}x{height})")
    return small


def evaluate_niqe(
    sr_dir: str | os.PathLike,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    progress: Callable[[str], None] | None = None,
) -> NiqeReport:
    """NIQE of every image of ``sr_dir`` (read recursively), as they are: no reference needed.

    Colour images are measured on the Y channel (or gray with ``y_channel=False``), gray images
    as they are, 16-bit images after scaling to 8 bits; ``crop_border`` pixels are cut from every
    side first. Every image must hold two 96x96 blocks after the crop; the ones that do not are
    all listed before anything is scored.
    """
    if crop_border < 0:
        raise UsageError(f"--crop-border must be 0 or more, got {crop_border}.")
    sr_dir = Path(sr_dir)
    paths = list_images(sr_dir)
    if not paths:
        raise DataError(f"No images in the folder {str(sr_dir)!r}.")
    small = _too_small_for_niqe(paths, sr_dir, crop_border)
    if small:
        raise DataError(
            f"NIQE needs at least two {BLOCK}x{BLOCK} blocks per image (e.g. {2 * BLOCK}x{BLOCK} pixels) after "
            f"a border crop of {crop_border}; too small:\n{format_problems(small)}"
        )
    results = []
    for path in paths:
        image = _niqe_input(read_image(path))
        name = path.relative_to(sr_dir).as_posix()
        score = niqe(image, crop_border=crop_border, y_channel=y_channel)
        results.append(NiqeScore(image=name, width=image.shape[1], height=image.shape[0], niqe=score))
        if progress is not None:
            progress(name)
    settings = {
        "metric": "NIQE (Mittal et al. 2013), the MATLAB release's pristine model; lower is better",
        "channel": "Y (BT.601, MATLAB rgb2ycbcr)" if y_channel else "gray (0.299 R + 0.587 G + 0.114 B)",
        "border_crop": crop_border,
        "blocks": f"{BLOCK}x{BLOCK} without overlap, at two scales",
        "images": str(sr_dir),
    }
    return NiqeReport(images=results, settings=settings)


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _format_niqe(report: NiqeReport, fmt: str) -> str:
    mean = report.mean["niqe"]
    if fmt == "json":
        return json.dumps(
            {"settings": report.settings, "images": [asdict(s) for s in report.images], "mean": report.mean}, indent=2
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "width", "height", "niqe"])
        for s in report.images:
            writer.writerow([s.image, s.width, s.height, s.niqe])
        writer.writerow(["mean", "", "", mean])
        return buffer.getvalue().rstrip("\n")
    rows = [[s.image, f"{s.width}x{s.height}", _fmt(s.niqe, 4)] for s in report.images]
    rows.append(["mean", "", _fmt(mean, 4)])
    s = report.settings
    title = (
        f"# NIQE (lower is better), {s.get('channel')}, border crop {s.get('border_crop')}, "
        f"blocks {s.get('blocks')}; images: {s.get('images')}"
    )
    return "\n".join([title, *_table(["image", "size", "NIQE"], rows)])


def format_report(report: EvalReport | NiqeReport, fmt: str = "table") -> str:
    """The report as an aligned text table, CSV or JSON (per image, then the mean)."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    if isinstance(report, NiqeReport):
        return _format_niqe(report, fmt)
    has_model = any(s.model_psnr is not None for s in report.images)
    mean = report.mean
    if fmt == "json":
        return json.dumps(
            {"settings": report.settings, "images": [asdict(s) for s in report.images], "mean": mean}, indent=2
        )
    columns = ["image", "width", "height", "bicubic_psnr", "bicubic_ssim"]
    if has_model:
        columns += ["model_psnr", "model_ssim"]
    rows = [
        [s.image, str(s.width), str(s.height)]
        + [_fmt(getattr(s, c), 2 if c.endswith("psnr") else 4) for c in columns[3:]]
        for s in report.images
    ]
    rows.append(["mean", "", ""] + [_fmt(mean[c], 2 if c.endswith("psnr") else 4) for c in columns[3:]])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for s in report.images:
            writer.writerow([s.image, s.width, s.height] + [getattr(s, c) for c in columns[3:]])
        writer.writerow(["mean", "", ""] + [mean[c] for c in columns[3:]])
        return buffer.getvalue().rstrip("\n")
    header = ["image", "size", "bicubic PSNR", "SSIM"] + (["model PSNR", "SSIM"] if has_model else [])
    table = [[r[0], f"{r[1]}x{r[2]}" if r[1] else ""] + r[3:] for r in rows]
    s = report.settings
    title = (
        f"# x{s.get('scale')}, {s.get('channel')}, border crop {s.get('border_crop')}, {s.get('rounding')}; "
        f"LR: {s.get('lr')}"
    )
    return "\n".join([title, *_table(header, table)])
