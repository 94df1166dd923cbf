"""Demos that need nothing but this package.

* :func:`run_upscale_demo`, the main job on the embedded default: the bundled x4 model upscales a
  folder of real photos (the ones it never saw in training, shrunk 4x), beside bicubic and the
  originals, with PSNR/SSIM, on a comparison page.
* :func:`run_demo`: builds a small paired data set from real photos that scikit-image ships
  (gray -> colour), trains pix2pix on it on the CPU (a few minutes on two cores),
  translates the held-out test inputs and writes a page: input | output | target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from i2i.config import load_config
from i2i.data.demo import make_paired_demo
from i2i.data.io import list_images, read_image, write_image
from i2i.inference.folder import translate_path
from i2i.inference.translator import Translator
from i2i.recipes import resolve_config_path
from i2i.report import write_comparison_page
from i2i.trainer import Trainer
from i2i.errors import DataError
from i2i.imageops import split_pair

__all__ = ["run_demo", "run_upscale_demo"]


def run_demo(out_dir: str | Path, *, overrides: tuple[str, ...] = (), progress: bool = True) -> Path:
    """Run the demo into ``out_dir``; returns the comparison page. Re-running reuses the data."""
    out_dir = Path(out_dir)
    data_root = out_dir / "data"
    if not (data_root / "gray2color" / "train").is_dir():
        make_paired_demo(data_root)
    config = load_config(
        resolve_config_path("pix2pix_demo"),
        # An empty run name gives a timestamped folder, so a second demo never touches the first.
        (f"data.root={data_root / 'gray2color'}", f"train.output_dir={out_dir / 'runs'}", "train.name=", *overrides),
    )
    run_dir = Trainer(config).fit()

    # Split the held-out aligned A|B test images into inputs and targets.
    inputs, targets = out_dir / "test" / "input", out_dir / "test" / "target"
    for path in list_images(data_root / "gray2color" / "test"):
        real_a, real_b = split_pair(read_image(path))
        write_image(inputs / f"{path.stem}.png", real_a)
        write_image(targets / f"{path.stem}.png", real_b)
    outputs = out_dir / "test" / "output" / run_dir.name
    translate_path(Translator.from_file(run_dir), inputs, outputs, overwrite=True, progress=progress)
    rows: list[dict[str, Path | str]] = [
        {"input": inputs / p.name, "output": outputs / p.name, "target": targets / p.name}
        for p in list_images(inputs)
    ]
    return write_comparison_page(
        out_dir / "index.html",
        rows,
        title="i2i demo: pix2pix gray -> colour",
        note=f"Held-out photos, generator from {run_dir}. Training samples by step: {run_dir / 'index.html'}.",
    )


_ZOOM_WINDOW = 80  # pixels of the original cut out for the zoomed comparison
_ZOOM_FACTOR = 4  # shown with nearest-neighbour enlargement, 320 px wide: every pixel visible


def _detail_window(image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square with the most edge energy at a coarse scale (lines
    and contours, not fur or grain), where SR shows against bicubic."""
    import cv2

    gray = image[..., :3].astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    gray = cv2.GaussianBlur(gray, (0, 0), 2.0)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, corner = -1.0, (0, 0)
    stride = max(1, size // 4)
    for top in range(0, energy.shape[0] - size + 1, stride):
        for left in range(0, energy.shape[1] - size + 1, stride):
            total = (integral[top + size, left + size] - integral[top, left + size]
                     - integral[top + size, left] + integral[top, left])
            if total > best:
                best, corner = float(total), (top, left)
    return corner


def _zoom(image: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    top, left = corner
    crop = image[top : top + _ZOOM_WINDOW, left : left + _ZOOM_WINDOW]
    return np.repeat(np.repeat(crop, _ZOOM_FACTOR, axis=0), _ZOOM_FACTOR, axis=1)


def _held_out_photos() -> list[tuple[str, np.ndarray]]:
    """The photos the bundled model never saw in training (its file records them) that ship with
    scikit-image, colour and gray."""
    from i2i.checkpoint import bundled_model_path, read_generator_info
    from i2i.data.demo import load_skimage_photo

    info = read_generator_info(bundled_model_path("x4"))
    photos = []
    for name in info.extra.get("held_out_photos", ()) if info else ():
        try:
            photos.append((name, load_skimage_photo(name)))
        except (AttributeError, ImportError, OSError):  # not a scikit-image photo (flower)
            continue
    if not photos:
        raise DataError("None of the bundled model's held-out photos could be loaded; reinstall scikit-image.")
    return photos


def run_upscale_demo(out_dir: str | Path, *, progress: bool = True) -> Path:
    """Upscale real photos x4 with the bundled model; returns the comparison page.

    The photos are those the bundled model was not trained on, shrunk 4x with MATLAB-compatible
    bicubic so the originals can score the result. Beside the whole images, the page shows the
    most detailed 80x80 window of each, enlarged 4x, where the difference from bicubic shows.
    """
    from i2i.evaluation import bicubic_upscale, make_lr, modcrop

    out_dir = Path(out_dir)
    photos = _held_out_photos()
    folders = {name: out_dir / name for name in ("photos", "bicubic", "upscaled", "original", "zoom")}
    for name, photo in photos:
        hr = modcrop(photo, 4)
        lr = make_lr(hr, 4)
        write_image(folders["photos"] / f"{name}.png", lr)
        write_image(folders["original"] / f"{name}.png", hr)
        write_image(folders["bicubic"] / f"{name}.png", bicubic_upscale(lr, 4))
    # The job itself: upscale a folder of photos.
    translate_path(Translator.from_file("x4"), folders["photos"], folders["upscaled"], overwrite=True, progress=progress)
    rows = [_upscale_demo_row(name, folders) for name, _ in photos]
    return write_comparison_page(
        out_dir / "index.html",
        rows,
        title="i2i: x4 super-resolution with the bundled model",
        note=f"{len(rows)} photos the model never saw in training, shrunk 4x with MATLAB-compatible bicubic, then "
        "upscaled. The zoom columns enlarge the most detailed 80x80 window of each result 4x. Scores on the Y "
        "channel with a 4-pixel border crop, as published SR tables report them.",
    )


def _upscale_demo_row(name: str, folders: dict[str, Path]) -> dict[str, Path | str]:
    from i2i.evaluation import sr_scores

    images = {kind: read_image(folders[kind] / f"{name}.png") for kind in ("bicubic", "upscaled", "original")}
    corner = _detail_window(images["original"], _ZOOM_WINDOW)
    zooms = {}
    for kind, image in images.items():
        zooms[kind] = folders["zoom"] / f"{name}_{kind}.png"
        write_image(zooms[kind], _zoom(image, corner))
    scores = {kind: sr_scores(images[kind], images["original"], border=4) for kind in ("bicubic", "upscaled")}
    return {
        "input (1/4 size)": folders["photos"] / f"{name}.png",
        "bicubic x4": folders["bicubic"] / f"{name}.png",
        "i2i x4": folders["upscaled"] / f"{name}.png",
        "original": folders["original"] / f"{name}.png",
        "zoom: bicubic": zooms["bicubic"],
        "zoom: i2i": zooms["upscaled"],
        "zoom: original": zooms["original"],
        "PSNR / SSIM (Y)": "bicubic {:.2f} dB / {:.3f}; i2i {:.2f} dB / {:.3f}".format(
            *scores["bicubic"], *scores["upscaled"]
        ),
    }
