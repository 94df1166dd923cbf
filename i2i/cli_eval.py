"""Evaluation commands: super-resolution PSNR/SSIM (LPIPS, FID) with the published conventions, of a
model or of a folder of existing outputs, and the no-reference NIQE."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

import click

from i2i.cli_common import CONTEXT, user_errors
from i2i.errors import UsageError

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

# The options each mode cannot use (the name as typed, for the message).
_NOT_IN_MODE = {
    "niqe": ("--hr", "--model", "--lr", "--scale", "--rgb", "--sr-suffix", "--lpips", "--fid"),
    "outputs": ("--model", "--lr", "--gray"),
    "model": ("--crop-border", "--gray", "--sr-suffix"),
}
_MODE_USE = {
    "niqe": "Score a folder with: i2i eval --niqe --sr OUTPUTS",
    "outputs": "Score existing outputs with: i2i eval --sr OUTPUTS --hr HR [--scale 4]",
    "model": "Score a model with: i2i eval --model x4 --hr HR (or add --sr OUTPUTS to score existing outputs)",
}


def _mode(niqe: bool, sr_dir: Path | None, hr_dir: Path | None, given: Mapping[str, object]) -> str:
    """``niqe``, ``outputs`` (--sr against --hr) or ``model`` (--hr with or without --model);
    UsageError for a missing folder or options that do not go together."""
    if niqe:
        if sr_dir is None:
            raise UsageError("--niqe scores a folder of images: give it with --sr OUTPUTS.")
        mode = "niqe"
    elif hr_dir is None:
        raise UsageError(
            "Give --hr HR_DIR: i2i eval --model x4 --hr Set5/HR scores a model, i2i eval --sr OUTPUTS --hr HR "
            "scores existing outputs; or --niqe --sr OUTPUTS needs no reference."
        )
    else:
        mode = "outputs" if sr_dir is not None else "model"
    unused = [name for name in _NOT_IN_MODE[mode] if given.get(name)]
    if unused:
        what = {"niqe": "--niqe needs no reference", "outputs": "--sr OUTPUTS are scored as they are",
                "model": "these options belong to --sr OUTPUTS or --niqe"}[mode]
        raise UsageError(f"{what}: {', '.join(unused)} cannot be used here. {_MODE_USE[mode]}")
    return mode


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
              help="Folder of existing outputs (any tool's, read recursively): scored against --hr, matched by "
              "name; or with --niqe, without a reference.")
@click.option("--sr-suffix", default="", metavar="TEXT",
              help="--sr --hr: the outputs are named NAME+TEXT (e.g. _x4, _out, _SR for baby_x4.png against baby.png).")
@click.option("--niqe", is_flag=True, help="No-reference NIQE of the images in --sr (lower is more natural).")
@click.option("--scale", type=click.IntRange(1, 8), default=None,
              help="Upscaling factor (default: the model's). With --sr --hr: crops that border, and lets the HR "
              "image be up to scale-1 pixels larger (cut to a multiple of scale).")
@click.option("--crop-border", type=click.IntRange(min=0), default=None,
              help="--sr: pixels cut from every side first (default: --scale with --hr, else 0).")
@click.option("--gray", is_flag=True, help="NIQE: measure gray (0.299 R + 0.587 G + 0.114 B) instead of the Y channel.")
@click.option("--rgb", is_flag=True, help="Measure PSNR/SSIM on RGB instead of the Y channel of BT.601 YCbCr.")
@click.option("--lpips", is_flag=True, help="Also LPIPS v0.1 per image (lower is closer); needs its weight files.")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True,
              help="LPIPS backbone (implies --lpips when not alex).")
@click.option("--lpips-weights", type=_FILE, default=None,
              help="LPIPS v0.1 linear layers (<net>.pth); default: <torch hub>/checkpoints/lpips_v0.1_<net>.pth "
              "or the lpips package's copy. Implies --lpips.")
@click.option("--lpips-backbone-weights", type=_FILE, default=None,
              help="torchvision's AlexNet/VGG16 ImageNet file; default: torchvision's cache. Implies --lpips.")
@click.option("--fid", is_flag=True, help="Also FID of the outputs against the ground truth (pytorch-fid's Inception).")
@click.option("--fid-weights", type=_FILE, default=None,
              help="pt_inception-2015-12-05-6726825d.pth; default: <torch hub>/checkpoints. Implies --fid.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report to this file.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar with rate and ETA on stderr (default: when stderr is a terminal).")
@user_errors
def eval_command(
    model: str | None, hr_dir: Path | None, lr_dir: Path | None, sr_dir: Path | None, sr_suffix: str, niqe: bool,
    scale: int | None, crop_border: int | None, gray: bool, rgb: bool, lpips: bool, lpips_net: str,
    lpips_weights: Path | None, lpips_backbone_weights: Path | None, fid: bool, fid_weights: Path | None, fmt: str,
    device: str, output: Path | None, progress: bool | None,
) -> None:
    """PSNR and SSIM of an SR model beside the bicubic baseline, or of a folder of existing outputs,
    per image and mean (optionally LPIPS and FID); or the no-reference NIQE of a folder.

    The published conventions: LR made with MATLAB's antialiased bicubic imresize (unless --lr),
    outputs rounded to uint8, the Y channel of BT.601 YCbCr (MATLAB rgb2ycbcr), a border of
    `scale` pixels cropped, SSIM with an 11x11 Gaussian window (sigma 1.5). --rgb measures all three
    channels instead (BasicSR's model zoo). LPIPS and FID measure RGB with the same crop.

    --sr OUTPUTS --hr HR scores outputs made by any tool: pairs match by path without the
    extension (--sr-suffix _x4 for baby_x4.png against baby.png); unmatched files are listed.
    Sizes must agree, except that with --scale S the HR image may be up to S-1 pixels larger
    (cut at the bottom/right to a multiple of S, as BasicSR does).

    --niqe --sr OUTPUTS scores every image of OUTPUTS with NIQE (Mittal et al. 2013) as SR papers
    compute it (the MATLAB release's algorithm and pristine model, as BasicSR reproduces it).

    \b
    Examples:
      i2i eval --model x4 --hr Set5/HR --scale 4
      i2i eval --model runs/srresnet_x4 --hr DIV2K_valid_HR --lr DIV2K_valid_LR_bicubic/X4 --format csv
      i2i eval --hr Set5/HR --scale 4              # the bicubic baseline alone
      i2i eval --sr results/Set5 --hr Set5/HR --scale 4 --sr-suffix _x4 --lpips -o set5.json --format json
      i2i eval --sr results/DIV2K --hr DIV2K_valid_HR --scale 4 --fid --fid-weights pt_inception-2015-12-05-6726825d.pth
      i2i eval --niqe --sr results/x4              # NIQE of a folder of outputs
      i2i eval --niqe --sr results/x4 --crop-border 4 --format json -o niqe.json
    """
    lpips = lpips or lpips_net != "alex" or lpips_weights is not None or lpips_backbone_weights is not None
    fid = fid or fid_weights is not None
    given = {"--hr": hr_dir, "--model": model, "--lr": lr_dir, "--scale": scale, "--rgb": rgb, "--gray": gray,
             "--crop-border": crop_border is not None, "--sr-suffix": sr_suffix, "--lpips": lpips, "--fid": fid}
    mode = _mode(niqe, sr_dir, hr_dir, given)
    show = sys.stderr.isatty() if progress is None else progress
    report: object
    if mode == "niqe":
        from i2i.evaluation import evaluate_niqe

        assert sr_dir is not None  # _mode checked which folders each mode needs
        report = evaluate_niqe(sr_dir, crop_border=crop_border or 0, y_channel=not gray, progress=show)
    else:
        from i2i.device import resolve_device
        from i2i.evaluation import DeepMetrics, evaluate_sr

        torch_device = str(resolve_device(device))
        deep = DeepMetrics.load(lpips=lpips, lpips_net=lpips_net, lpips_weights=lpips_weights,
                                lpips_backbone_weights=lpips_backbone_weights, fid=fid, fid_weights=fid_weights,
                                device=torch_device)
        assert hr_dir is not None  # both other modes score against HR (checked by _mode)
        if mode == "outputs":
            from i2i.eval_outputs import evaluate_outputs

            assert sr_dir is not None
            report = evaluate_outputs(sr_dir, hr_dir, sr_suffix=sr_suffix, scale=scale, crop_border=crop_border,
                                      y_channel=not rgb, deep=deep, progress=show)
        else:
            report = evaluate_sr(model, hr_dir, lr_dir=lr_dir, scale=scale, y_channel=not rgb, device=torch_device,
                                 deep=deep, progress=show)
    _emit(report, fmt, output)


def _emit(report: object, fmt: str, output: Path | None) -> None:
    """Print the report; also write it atomically to ``output``; name unmatched files on stderr."""
    from i2i.eval_report import format_report

    text = format_report(report, fmt)  # type: ignore[arg-type]
    click.echo(text)
    for side in ("sr", "hr"):
        unmatched = getattr(report, f"unmatched_{side}", [])
        if unmatched and fmt != "table":  # the table lists them itself
            click.echo(f"Warning: {len(unmatched)} {side.upper()} file(s) without a partner: "
                       f"{', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}", err=True)
    if output is not None:
        from i2i.files import atomic_write_bytes

        atomic_write_bytes(output, (text + "\n").encode())
