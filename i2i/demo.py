"""The main job on the embedded default: a pix2pix demo that needs nothing but this package.

It builds a small paired data set from real photos that scikit-image and scikit-learn ship
(gray -> colour), trains pix2pix on it on the CPU for about a minute, translates the held-out
test inputs and writes a side-by-side page: input | output | target.
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

__all__ = ["run_demo"]


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
