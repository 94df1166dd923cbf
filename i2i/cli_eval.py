"""Evaluation commands: super-resolution PSNR/SSIM with the published conventions, and NIQE."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors
from i2i.errors import UsageError

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


def _check_options(niqe: bool, sr_dir: Path | None, hr_dir: Path | None, given: dict[str, object]) -> None:
    """Raise UsageError for options that do not go together (NIQE mode or the PSNR/SSIM mode)."""
    if niqe:
        if sr_dir is None:
            raise UsageError("--niqe scores a folder of images: give it with --sr OUTPUTS.")
        unused = [name for name, value in given.items() if value]
        if hr_dir is not None:
            unused.insert(0, "--hr")
        if unused:
            raise UsageError(
                f"--niqe needs no reference: {', '.join(unused)} cannot be used with it. "
                "Score a folder with: i2i eval --niqe --sr OUTPUTS"
            )
        return
    if sr_dir is not None:
        raise UsageError("--sr OUTPUTS is scored with --niqe (no reference): i2i eval --niqe --sr OUTPUTS.")
    if hr_dir is None:
        raise UsageError("Give --hr HR_DIR for PSNR/SSIM (i2i eval --model x4 --hr Set5/HR), or --niqe --sr OUTPUTS.")


@click.command("eval", context_settings=CONTEXT)
@click.option(
    "--model", "-m", default=None,
    help="SR generator: an i2i file or run folder, a BasicSR/leftthomas .pth, or a bundled name (x4). "
    "Omit it to report the bicubic baseline alone.",
)
@click.option("--hr", "hr_dir", type=_FOLDER, help="Folder of high-resolution ground-truth images (read recursively).")
@click.option("--lr", "lr_dir", type=_FOLDER,
              help="Folder of LR inputs matched by name (NAME or NAMEx4). Default: made from HR with MATLAB bicubic.")
@click.option("--sr", "sr_dir", type=_FOLDER,
              help="Folder of SR outputs to score as they are (read recursively); with --niqe, no reference needed.")
@click.option("--niqe", is_flag=True, help="No-reference NIQE of the images in --sr (lower is more natural).")
@click.option("--scale", type=click.IntRange(1, 8), default=None, help="Upscaling factor (default: the model's).")
@click.option("--crop-border", type=click.IntRange(min=0), default=None,
              help="NIQE: pixels cut from every side first (SR papers often crop the scale). Default 0.")
@click.option("--gray", is_flag=True, help="NIQE: measure gray (0.299 R + 0.587 G + 0.114 B) instead of the Y channel.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--rgb", is_flag=True, help="Measure on RGB instead of the Y channel of BT.601 YCbCr.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report to this file.")
@user_errors
def eval_command(
    model: str | None, hr_dir: Path | None, lr_dir: Path | None, sr_dir: Path | None, niqe: bool, scale: int | None,
    crop_border: int | None, gray: bool, fmt: str, rgb: bool, device: str, output: Path | None,
) -> None:
    """PSNR and SSIM of an SR model beside the bicubic baseline, per image and mean; or the
    no-reference NIQE of a folder of outputs.

    The published conventions: LR made with MATLAB's antialiased bicubic imresize (unless --lr),
    outputs rounded to uint8, the Y channel of BT.601 YCbCr (MATLAB rgb2ycbcr), a border of
    `scale` pixels cropped. --rgb measures all three channels instead (BasicSR's model zoo).

    --niqe --sr OUTPUTS scores every image of OUTPUTS with NIQE (Mittal et al. 2013) as SR papers
    compute it (the MATLAB release's algorithm and pristine model, as BasicSR reproduces it): the
    Y channel, 96x96 blocks, two scales. Lower is more natural; no ground truth is needed.

    \b
    Examples:
      i2i eval --model x4 --hr Set5/HR --scale 4
      i2i eval --model runs/srresnet_x4 --hr DIV2K_valid_HR --lr DIV2K_valid_LR_bicubic/X4 --format csv
      i2i eval --hr Set5/HR --scale 4              # the bicubic baseline alone
      i2i eval --niqe --sr results/x4              # NIQE of a folder of outputs
      i2i eval --niqe --sr results/x4 --crop-border 4 --format json -o niqe.json
    """
    pairs_only = {"--model": model, "--lr": lr_dir, "--scale": scale, "--rgb": rgb}
    _check_options(niqe, sr_dir, hr_dir, pairs_only)
    if not niqe and (crop_border is not None or gray):
        raise UsageError("--crop-border and --gray are NIQE options; add --niqe --sr OUTPUTS.")
    if niqe:
        from i2i.evaluation import evaluate_niqe, format_report

        report = evaluate_niqe(sr_dir, crop_border=crop_border or 0, y_channel=not gray)
    else:
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
