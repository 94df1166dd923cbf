"""Inference commands: translate images and folders."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors


@click.command(context_settings=CONTEXT)
@click.option("--model", "-m", required=True, help="Generator file, training run folder, or official *_net_G.pth.")
@click.argument("input_path", type=click.Path(exists=True, path_type=Path))
@click.argument("output_path", type=click.Path(path_type=Path))
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), help="Which generator of a two-way run.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (never inputs).")
@click.option("--suffix", default="", help="Appended to each output file name, before the extension.")
@click.option("--ext", default=None, help="Output format, e.g. png or jpg (default: the input's).")
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG/WebP quality.")
@user_errors
def translate(
    model: str, input_path: Path, output_path: Path, direction: str | None, device: str,
    overwrite: bool, suffix: str, ext: str | None, quality: int | None,
) -> None:
    """Translate an image or a folder tree (recursive; the output mirrors it).

    Any image size works; the output has the input's size. Existing outputs are skipped unless
    --overwrite. A file that fails is reported and the rest go on; the exit status is 1 if any failed.

    \b
    Examples:
      i2i translate --model runs/pix2pix_demo photos/ out/
      i2i translate --model latest_net_G.pth facade.jpg facade_photo.png
    """
    from i2i.inference.folder import translate_path
    from i2i.inference.translator import Translator
    from i2i.trainer import resolve_device

    translator = Translator.from_file(model, direction=direction, device=resolve_device(device))
    report = translate_path(
        translator, input_path, output_path, overwrite=overwrite, suffix=suffix, ext=ext, quality=quality
    )
    click.echo(f"{len(report.written)} written, {len(report.skipped)} skipped (exist), {len(report.failed)} failed.")
    for path, reason in report.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if report.failed:
        sys.exit(1)
