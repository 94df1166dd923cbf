"""Evaluation commands: super-resolution PSNR/SSIM with the published conventions."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors


@click.command("eval", context_settings=CONTEXT)
@click.option(
    "--model", "-m", default=None,
    help="SR generator: an i2i file or run folder, a BasicSR/leftthomas .pth, or a bundled name (x4). "
    "Omit it to report the bicubic baseline alone.",
)
@click.option("--hr", "hr_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of high-resolution ground-truth images (read recursively).")
@click.option("--lr", "lr_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of LR inputs matched by name (NAME or NAMEx4). Default: made from HR with MATLAB bicubic.")
@click.option("--scale", type=click.IntRange(1, 8), default=None, help="Upscaling factor (default: the model's).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--rgb", is_flag=True, help="Measure on RGB instead of the Y channel of BT.601 YCbCr.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report to this file.")
@user_errors
def eval_command(
    model: str | None, hr_dir: Path, lr_dir: Path | None, scale: int | None, fmt: str, rgb: bool, device: str,
    output: Path | None,
) -> None:
    """PSNR and SSIM of an SR model beside the bicubic baseline, per image and mean.

    The published conventions: LR made with MATLAB's antialiased bicubic imresize (unless --lr),
    outputs rounded to uint8, the Y channel of BT.601 YCbCr (MATLAB rgb2ycbcr), a border of
    `scale` pixels cropped. --rgb measures all three channels instead (BasicSR's model zoo).

    \b
    Examples:
      i2i eval --model x4 --hr Set5/HR --scale 4
      i2i eval --model runs/srresnet_x4 --hr DIV2K_valid_HR --lr DIV2K_valid_LR_bicubic/X4 --format csv
      i2i eval --hr Set5/HR --scale 4              # the bicubic baseline alone
    """
    from i2i.evaluation import evaluate_sr, format_report
    from i2i.device import resolve_device

    report = evaluate_sr(
        model, hr_dir, lr_dir=lr_dir, scale=scale, y_channel=not rgb, device=str(resolve_device(device)),
    )
    text = format_report(report, fmt)
    click.echo(text)
    if output is not None:
        from i2i.files import atomic_write_bytes

        atomic_write_bytes(output, (text + "\n").encode())
