"""The ``i2i test`` command: a generator over a data set's test split, with a results page."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors

_PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # i2i.device.PRECISIONS, without importing torch


def _load_direction(model: str, direction: str | None) -> str | None:
    """The direction to load the model with: the one asked for; AtoB for a run folder with a
    generator per direction (CycleGAN), as test.py defaults; else none (the file says)."""
    if direction or not Path(model).is_dir():
        return direction
    from i2i.checkpoint import GENERATOR_SUFFIX, read_generator_info

    infos = [read_generator_info(p) for p in Path(model).glob(f"*{GENERATOR_SUFFIX}")]
    return "AtoB" if len({i.direction for i in infos if i is not None and i.direction}) > 1 else None


@click.command("test", context_settings=CONTEXT)
@click.argument("model", metavar="RUN_OR_MODEL")
@click.option("--data", "data_root", required=True, type=click.Path(path_type=Path),
              help="Data root: test/ (or val/) with A|B pairs, A/test and B/test, or CycleGAN's testA/ testB/.")
@click.option("--num-test", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many test images (the first, sorted).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]),
              help="BtoA swaps the halves of a pair (CycleGAN: translates testB with the B-to-A generator). "
              "Default: the model's own direction, else AtoB.")
@click.option("--phase", default="test", show_default=True, help="The split: test, val, train ...")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Pages go to RESULTS_DIR/NAME/<phase>_<epoch>/.")
@click.option("--name", help="The experiment's name in the results folder (default: the run folder's or file's name).")
@click.option("--overwrite", is_flag=True, help="Replace a finished page of the same name.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when available).")
@click.option("--precision", type=click.Choice(_PRECISIONS), default="auto", show_default=True,
              help="auto: fp16 on CUDA (fp32 again if it yields NaN/inf), fp32 on CPU.")
@click.option("--norm-mode", type=click.Choice(["auto", "train", "eval"]), default="auto", show_default=True,
              help="eval: BatchNorm uses the stored statistics, dropout off. train: as test.py without --eval "
              "(each image normalised by its own statistics, dropout on). auto: train for that project's "
              "*_net_G.pth files with BatchNorm or dropout, eval otherwise.")
@click.option("--seed", type=int, default=None, help="Make dropout under --norm-mode train repeatable.")
@user_errors
def test_command(
    model: str, data_root: Path, num_test: int, direction: str | None, phase: str, results_dir: Path,
    name: str | None, overwrite: bool, device: str, precision: str, norm_mode: str, seed: int | None,
) -> None:
    """Translate the test split of a data set with RUN_OR_MODEL and write a results page.

    As pytorch-CycleGAN-and-pix2pix's test.py: RESULTS_DIR/NAME/test_latest/index.html with an
    images/ folder, real_A | fake_B | real_B per image; with targets (pix2pix pairs) also L1, PSNR
    and SSIM per image and their means at the top. RUN_OR_MODEL is an i2i run folder or generator
    file, or that project's latest_net_G.pth / latest_net_G_A.pth. A finished page is kept unless
    --overwrite.

    \b
    Examples:
      i2i test runs/pix2pix_facades --data datasets/facades
      i2i test checkpoints/facades_label2photo/latest_net_G.pth --data datasets/facades --direction BtoA
      i2i test runs/cyclegan_h2z --data datasets/horse2zebra --direction BtoA --num-test 100
      i2i test gen.safetensors --data my_pairs --phase val --results-dir pages --overwrite
    """
    from i2i.device import resolve_device
    from i2i.inference.translator import Translator
    from i2i.test_pages import check_outside, check_results_folder, default_name, find_test_split, run_test

    default, epoch = default_name(model)
    out_dir = results_dir / (name or default) / f"{phase}_{epoch}"
    check_results_folder(out_dir, overwrite=overwrite)  # before the model loads
    translator = Translator.from_file(
        model, direction=_load_direction(model, direction), device=resolve_device(device, option="--device"),
        precision=precision, norm_mode=norm_mode, seed=seed,
    )
    data_direction = direction or translator.info.direction or "AtoB"
    split = find_test_split(data_root, phase, data_direction)
    check_outside(out_dir, split)
    count = min(num_test, len(split.items))
    notes = [
        f"Model: {model}. Data: {split.folder} ({split.layout}), {count} of {len(split.items)} images, {data_direction}.",
        f"Device {translator.device}, precision {precision}, norm mode {translator.norm_mode}.",
        split.note,
    ]
    title = f"Experiment = {name or default}, Phase = {phase}, Epoch = {epoch}"
    result = run_test(translator, split, out_dir, direction=data_direction, num_test=num_test, title=title, notes=notes)
    if split.note:
        click.echo(split.note)
    means = result.mean()
    if means:
        click.echo(
            f"Mean over {len(result.scores)} images: L1 {means['l1']:.4f}, PSNR {means['psnr']:.2f} dB, "
            f"SSIM {means['ssim']:.4f}"
        )
    click.echo(f"Results page: {result.page}")
