"""Demos that need nothing but this package.

* :func:`run_upscale_demo`, the main job on the embedded default: the bundled x4 model upscales a
  folder of real photos (the ones it never saw in training, shrunk 4x), beside bicubic and the
  originals, with PSNR/SSIM, on a comparison page.
* :func:`run_demo`: builds a small paired data set from real photos that scikit-image and
  scikit-learn ship (gray -> colour), trains pix2pix on it on the CPU for about a minute,
  translates the held-out test inputs and writes a page: input | output | target.
"""
from __future__ import annotations

from pathlib import Path

from i2i.config import load_config
from i2i.data.demo import make_paired_demo
from i2i.data.io import list_images, read_image, write_image
from i2i.inference.folder import translate_path
from i2i.inference.translator import Translator
from i2i.recipes import resolve_config_path
from i2i.report import write_comparison_page
from i2i.trainer import Trainer
from i2i.errors import DataError

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
        image = read_image(path)
        half = image.shape[1] // 2
        write_image(inputs / f"{path.stem}.png", image[:, :half])
        write_image(targets / f"{path.stem}.png", image[:, half : 2 * half])
    outputs = out_dir / "test" / "output" / run_dir.name
    translate_path(Translator.from_file(run_dir), inputs, outputs, overwrite=True, progress=progress)
    rows = [
        {"input": inputs / p.name, "output": outputs / p.name, "target": targets / p.name}
        for p in list_images(inputs)
    ]
    return write_comparison_page(
        out_dir / "index.html",
        rows,
        title="i2i demo: pix2pix gray -> colour",
        note=f"Held-out photos, generator from {run_dir}. Training samples by step: {run_dir / 'index.html'}.",
    )


def run_upscale_demo(out_dir: str | Path, *, progress: bool = True) -> Path:
    """Upscale real photos x4 with the bundled model; returns the comparison page.

    The photos are those the bundled model was not trained on (its file records them), shrunk
    4x with MATLAB-compatible bicubic so the originals can score the result.
    """
    from i2i.checkpoint import bundled_model_path, read_generator_info
    from i2i.data.demo import load_demo_photos
    from i2i.evaluation import bicubic_upscale, make_lr, modcrop, sr_scores

    out_dir = Path(out_dir)
    info = read_generator_info(bundled_model_path("x4"))
    held_out = set(info.extra.get("held_out_photos", ())) if info else set()
    photos = [(photo_info.name, photo) for _, photo_info, photo in load_demo_photos() if photo_info.name in held_out]
    if not photos:
        raise DataError("None of the bundled model's held-out photos could be loaded; install scikit-image and scikit-learn.")
    folders = {name: out_dir / name for name in ("photos", "bicubic", "upscaled", "original")}
    for name, photo in photos:
        hr = modcrop(photo, 4)
        lr = make_lr(hr, 4)
        write_image(folders["photos"] / f"{name}.png", lr)
        write_image(folders["original"] / f"{name}.png", hr)
        write_image(folders["bicubic"] / f"{name}.png", bicubic_upscale(lr, 4))
    # The job itself: upscale a folder of photos.
    translate_path(Translator.from_file("x4"), folders["photos"], folders["upscaled"], overwrite=True, progress=progress)
    rows = []
    for name, _ in photos:
        hr = read_image(folders["original"] / f"{name}.png")
        scores = {
            kind: sr_scores(read_image(folders[kind] / f"{name}.png"), hr, border=4) for kind in ("bicubic", "upscaled")
        }
        rows.append(
            {
                "input (1/4 size)": folders["photos"] / f"{name}.png",
                "bicubic x4": folders["bicubic"] / f"{name}.png",
                "i2i x4": folders["upscaled"] / f"{name}.png",
                "original": folders["original"] / f"{name}.png",
                "PSNR / SSIM (Y)": "bicubic {:.2f} dB / {:.3f}; i2i {:.2f} dB / {:.3f}".format(
                    *scores["bicubic"], *scores["upscaled"]
                ),
            }
        )
    return write_comparison_page(
        out_dir / "index.html",
        rows,
        title="i2i: x4 super-resolution with the bundled model",
        note="Photos the model never saw in training, shrunk 4x with MATLAB-compatible bicubic, then upscaled. "
        "Scores on the Y channel with a 4-pixel border crop, as published SR tables report them.",
    )
