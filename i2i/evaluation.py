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
LPIPS (:mod:`i2i.lpips`, on RGB) and FID (:mod:`i2i.fid`, each set of outputs against the HR
set) use the same crop, when asked for through :class:`DeepMetrics`. Scoring a folder of
existing outputs against ground truth is :mod:`i2i.eval_outputs`.

**No reference.** :func:`evaluate_niqe` scores a folder of images (SR outputs, say) with NIQE
(:mod:`i2i.niqe`), which needs no ground truth: lower is more natural.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from i2i.data.io import list_images, read_image, read_image_size
from i2i.data.resize import imresize_array
from i2i.errors import DataError, UsageError, format_problems
from i2i.eval_report import FORMATS, EvalReport, ImageScores, NiqeReport, NiqeScore, format_report
from i2i.imageops import convert_channels, to_uint8
from i2i.niqe import BLOCK, niqe

__all__ = [
    "FORMATS",
    "ImageScores",
    "EvalReport",
    "NiqeScore",
    "NiqeReport",
    "as_eval8",
    "rgb_to_y",
    "modcrop",
    "crop_border",
    "psnr",
    "ssim",
    "sr_scores",
    "make_lr",
    "bicubic_upscale",
    "DeepMetrics",
    "evaluate_sr",
    "evaluate_niqe",
    "format_report",
]


def as_eval8(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` uint8/uint16 gray, RGB or RGBA -> what is scored: uint8, gray kept as one
    plane (as BasicSR scores a gray image), colour as RGB (alpha dropped, 16 bits scaled)."""
    image = to_uint8(image)
    return np.ascontiguousarray(convert_channels(image, 1 if image.shape[2] == 1 else 3))


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


def ssim(a: np.ndarray, b: np.ndarray, max_value: float = 255.0) -> float:
    """SSIM of ``(H, W)`` or ``(H, W, C)`` arrays (mean over channels), Wang et al.'s settings.

    scikit-image's ``structural_similarity`` with BasicSR's ``calculate_ssim`` conventions: an
    11x11 Gaussian window (sigma 1.5), population (not sample) covariance, ``K = (0.01, 0.03)``,
    ``data_range = max_value`` on the float64 values, the mean over the valid region (the window
    radius is left out at the edges) and over channels. Needs at least 11x11 pixels.
    """
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise DataError(f"ssim: shapes differ, {a.shape} and {b.shape}.")
    if min(a.shape[:2]) < 11:
        raise DataError(f"ssim needs images of at least 11x11 pixels after the border crop, got {a.shape[1]}x{a.shape[0]}.")
    return float(structural_similarity(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), data_range=max_value,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=2 if a.ndim == 3 else None,
    ))


def sr_scores(output: np.ndarray, hr: np.ndarray, *, border: int, y_channel: bool = True) -> tuple[float, float]:
    """(PSNR, SSIM) of uint8 ``output`` against ``hr`` with the published conventions: colour on
    the Y channel (or RGB), gray on its one plane, as BasicSR's ``to_y_channel`` leaves it."""
    if output.shape[2] != hr.shape[2]:  # gray against colour: compare in colour
        output, hr = convert_channels(output, 3), convert_channels(hr, 3)
    if output.shape != hr.shape:
        raise DataError(f"output {output.shape} and HR {hr.shape} differ in shape.")
    if y_channel and output.shape[2] == 3:
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
    hr = as_eval8(read_image(hr_path))
    if lr_files is None:
        hr = modcrop(hr, scale)
        return make_lr(hr, scale), hr
    lr = as_eval8(read_image(_match_lr(hr_path, hr_dir, lr_files, scale)))
    want_h, want_w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < want_h or hr.shape[1] < want_w or hr.shape[0] - want_h >= scale or hr.shape[1] - want_w >= scale:
        raise DataError(
            f"{hr_path} is {hr.shape[1]}x{hr.shape[0]} but its LR image is {lr.shape[1]}x{lr.shape[0]}; "
            f"at x{scale} the HR image should be {want_w}x{want_h} (up to {scale - 1} extra pixels)."
        )
    return lr, hr[:want_h, :want_w]


@dataclass
class DeepMetrics:
    """The learned metrics an evaluation was asked for: LPIPS per image (``lpips``, an
    :class:`i2i.lpips.LPIPS`) and FID between sets (``fid``, an :class:`i2i.fid.FidInception`),
    None when not asked. Both measure the border-cropped uint8 RGB images."""

    lpips: Any = None
    fid: Any = None
    device: str = "cpu"
    features: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @classmethod
    def load(cls, *, lpips: bool = False, lpips_net: str = "alex", lpips_weights: str | os.PathLike | None = None,
             lpips_backbone_weights: str | os.PathLike | None = None, fid: bool = False,
             fid_weights: str | os.PathLike | None = None, device: str = "cpu") -> DeepMetrics | None:
        """The networks asked for, on ``device``; None when neither is (nothing to load)."""
        if not (lpips or fid):
            return None
        metrics = cls(device=device)
        if lpips:
            from i2i.lpips import load_lpips

            metrics.lpips = load_lpips(lpips_net, backbone_weights=lpips_backbone_weights,
                                       linear_weights=lpips_weights).to(device)
        if fid:
            from i2i.fid import load_fid_inception

            metrics.fid = load_fid_inception(fid_weights).to(device)
        return metrics

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.lpips is not None:
            out["lpips"] = "LPIPS v0.1 on RGB in [-1, 1], border cropped; lower is closer"
        if self.fid is not None:
            out["fid"] = ("pytorch-fid's Inception (pt_inception-2015-12-05), 2048-d pool3, 299x299 bilinear; "
                          "border cropped; needs 2048+ images per set to be comparable with published values")
        return out

    def check_count(self, count: int) -> None:
        """Raise before any work when FID is asked for with fewer than two images."""
        if self.fid is not None and count < 2:
            raise DataError(f"FID compares the spread of two sets of images and needs at least two; got {count}.")

    def reference(self, hr: np.ndarray, *, border: int) -> None:
        """With FID, keep the features of a ground-truth image (once per image)."""
        if self.fid is not None:
            from i2i.fid import fid_features

            hr = convert_channels(hr, 3)  # the networks see RGB; a gray image as three equal planes
            self.features.setdefault("hr", []).append(fid_features(self.fid, [crop_border(hr, border)], self.device)[0])

    def score(self, output: np.ndarray, hr: np.ndarray, *, border: int, name: str) -> float | None:
        """LPIPS of ``output`` against ``hr`` (None when not asked); with FID, keeps the features of
        ``output`` in the set ``name``."""
        output, hr = convert_channels(output, 3), convert_channels(hr, 3)  # the networks see RGB
        a = crop_border(output, border)
        if self.fid is not None:
            from i2i.fid import fid_features

            self.features.setdefault(name, []).append(fid_features(self.fid, [a], self.device)[0])
        if self.lpips is None:
            return None
        from i2i.lpips import lpips_distance

        return lpips_distance(self.lpips, a, crop_border(hr, border), self.device)

    def fid_scores(self) -> dict[str, float]:
        """FID of every set of outputs against the HR set ({} without FID)."""
        if self.fid is None:
            return {}
        from i2i.fid import frechet_distance

        hr = np.stack(self.features["hr"])
        return {name: frechet_distance(np.stack(f), hr) for name, f in self.features.items() if name != "hr"}


def evaluate_sr(
    model: str | os.PathLike | None,
    hr_dir: str | os.PathLike,
    *,
    lr_dir: str | os.PathLike | None = None,
    scale: int | None = None,
    y_channel: bool = True,
    device: str = "cpu",
    deep: DeepMetrics | None = None,
    progress: bool = False,
) -> EvalReport:
    """Score an SR generator and the bicubic baseline on every image of ``hr_dir``.

    ``model`` is anything ``i2i translate --model`` takes (a generator file, a run folder, a
    BasicSR or leftthomas file, a bundled name such as ``x4``), or None for the baseline alone.
    Without ``lr_dir`` the LR inputs are made from the HR images (MATLAB bicubic); with it they
    are read and matched by name. ``scale`` defaults to the model's. ``deep`` adds LPIPS and FID;
    ``progress`` shows a bar with the rate and ETA on stderr.
    """
    from tqdm import tqdm

    translator, scale = _sr_translator(model, scale, device)
    hr_dir = Path(hr_dir)
    hr_paths = list_images(hr_dir)
    if not hr_paths:
        raise DataError(f"No images in the HR folder {str(hr_dir)!r}.")
    if deep is not None:
        deep.check_count(len(hr_paths))
    lr_files: dict[str, Path] = {}
    if lr_dir is not None:
        lr_dir = Path(lr_dir)
        lr_files = {p.relative_to(lr_dir).with_suffix("").as_posix(): p for p in list_images(lr_dir)}

    results = []
    for hr_path in tqdm(hr_paths, desc="eval", unit="img", disable=not progress, dynamic_ncols=True):
        lr, hr = _lr_and_hr(hr_path, hr_dir, lr_files if lr_dir is not None else None, scale)
        bicubic = bicubic_upscale(lr, scale)
        b_psnr, b_ssim = sr_scores(bicubic, hr, border=scale, y_channel=y_channel)
        scores = ImageScores(image=hr_path.relative_to(hr_dir).as_posix(), width=hr.shape[1], height=hr.shape[0],
                             bicubic_psnr=b_psnr, bicubic_ssim=b_ssim)
        if deep is not None:
            deep.reference(hr, border=scale)
            scores.bicubic_lpips = deep.score(bicubic, hr, border=scale, name="bicubic")
        if translator is not None:
            output = as_eval8(translator.translate_image(lr))
            scores.model_psnr, scores.model_ssim = sr_scores(output, hr, border=scale, y_channel=y_channel)
            if deep is not None:
                scores.model_lpips = deep.score(output, hr, border=scale, name="model")
        results.append(scores)
    settings = {
        "model": str(model) if model is not None else None,
        "scale": scale,
        "channel": "Y (BT.601, MATLAB rgb2ycbcr)" if y_channel else "RGB",
        "border_crop": scale,
        "lr": str(lr_dir) if lr_dir is not None else "MATLAB bicubic imresize of HR, uint8",
        "rounding": "uint8 before measuring",
        **(deep.settings() if deep is not None else {}),
    }
    return EvalReport(images=results, settings=settings, fid=deep.fid_scores() if deep is not None else {})


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
    progress: bool = False,
) -> NiqeReport:
    """NIQE of every image of ``sr_dir`` (read recursively), as they are: no reference needed.

    Colour images are measured on the Y channel (or gray with ``y_channel=False``), gray images
    as they are, 16-bit images after scaling to 8 bits; ``crop_border`` pixels are cut from every
    side first. Every image must hold two 96x96 blocks after the crop; the ones that do not are
    all listed before anything is scored. ``progress`` shows a bar with the rate and ETA on stderr.
    """
    from tqdm import tqdm

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
    for path in tqdm(paths, desc="niqe", unit="img", disable=not progress, dynamic_ncols=True):
        image = as_eval8(read_image(path))
        name = path.relative_to(sr_dir).as_posix()
        score = niqe(image, crop_border=crop_border, y_channel=y_channel)
        results.append(NiqeScore(image=name, width=image.shape[1], height=image.shape[0], niqe=score))
    settings = {
        "metric": "NIQE (Mittal et al. 2013), the MATLAB release's pristine model; lower is better",
        "channel": "Y (BT.601, MATLAB rgb2ycbcr)" if y_channel else "gray (0.299 R + 0.587 G + 0.114 B)",
        "border_crop": crop_border,
        "blocks": f"{BLOCK}x{BLOCK} without overlap, at two scales",
        "images": str(sr_dir),
    }
    return NiqeReport(images=results, settings=settings)
