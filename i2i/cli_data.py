"""``i2i data ...``: download public data sets, combine paired folders, build offline demo data.

A thin layer over :mod:`i2i.data`: parse, call, print. User mistakes (i2i's own errors)
become one-line messages without a traceback. Heavy modules are imported inside
the commands so ``i2i --help`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import user_errors

__all__ = ["data_group"]


@click.group("data")
def data_group() -> None:
    """Get training data: public pix2pix/CycleGAN sets, your own paired folders, or demo data."""


@data_group.command("list")
@user_errors
def list_command() -> None:
    """List the public data sets that `i2i data download` knows.

    \b
    Example:
      i2i data list
    """
    from i2i.data.download import list_datasets

    rows = list_datasets()
    width = max(len(info.name) for info in rows)
    for kind, title in (("pix2pix", "pix2pix (paired, A|B images in train/ val/ test/)"),
                        ("cyclegan", "CycleGAN (unpaired, trainA/ trainB/ testA/ testB/)")):
        click.echo(title)
        for info in rows:
            if info.kind == kind:
                note = f"  [note: {info.note}]" if info.note else ""
                click.echo(f"  {info.name:<{width}}  {info.description}{note}")
        click.echo()
    click.echo("Download one with: i2i data download NAME [--root datasets]")


@data_group.command("download")
@click.argument("name")
@click.option("--root", default="datasets", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for archives and extracted data sets (data goes to ROOT/NAME).")
@click.option("--base-url", default=None, metavar="URL",
              help="Download FILE from URL/FILE instead of the official server (a mirror). "
                   "Also settable with the I2I_DATASETS_URL environment variable.")
@click.option("--sha256", default=None, metavar="HEX", help="Expected SHA-256 of the archive; verified.")
@click.option("--force", is_flag=True, help="Download and extract again even if ROOT/NAME exists.")
@click.option("--keep-archive/--delete-archive", default=True, show_default=True,
              help="Keep the archive after extracting it.")
@user_errors
def download_command(name: str, root: Path, base_url: str | None, sha256: str | None, force: bool,
                     keep_archive: bool) -> None:
    """Download and extract the public data set NAME (see `i2i data list`).

    The SHA-256 of the first download is printed and recorded in ROOT/NAME.sha256; later
    downloads must match it.

    \b
    Examples:
      i2i data download facades
      i2i data download horse2zebra --root /data/i2i
      i2i data download cyclegan/maps --base-url http://mirror.example.org/cyclegan
    """
    from i2i.data.download import download_dataset

    folder = download_dataset(name, root, base_url=base_url, sha256=sha256, force=force, progress=True,
                              keep_archive=keep_archive)
    click.echo(str(folder))


@data_group.command("combine")
@click.argument("a_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@user_errors
def combine_command(a_dir: Path, b_dir: Path, out: Path) -> None:
    """Write aligned A|B pairs (pix2pix format) from two folders matched by relative path.

    A_DIR/train/0001.jpg and B_DIR/train/0001.png become OUT/train/0001.png with A on the
    left and B on the right. Unmatched names and size mismatches are all listed before
    anything is written.

    \b
    Example:
      i2i data combine photos/sketches photos/colour datasets/sketch2photo
    """
    from i2i.data.combine import combine_folders

    written = combine_folders(a_dir, b_dir, out, progress=True)
    click.echo(f"wrote {len(written)} pair{'' if len(written) == 1 else 's'} to {out}")


@data_group.command("demo")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=16), help="Crop size in pixels.")
@click.option("--crops-per-photo", default=6, show_default=True, type=click.IntRange(min=1),
              help="Random crops cut from each photo.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the photo split and the crops.")
@user_errors
def demo_command(out: Path, size: int, crops_per_photo: int, seed: int) -> None:
    """Build small real demo sets from packaged photos: paired (edges2photo, gray2color) for
    pix2pix and unpaired (photo2warm: natural <-> warm-graded colour) for CycleGAN.

    Works offline: the photos ship with scikit-image and scikit-learn. val and test come
    from photos that train never sees.

    \b
    Example:
      i2i data demo datasets/demo --size 128
    """
    from i2i.data.demo import make_paired_demo, make_unpaired_demo

    folder = make_paired_demo(out, size=size, crops_per_photo=crops_per_photo, seed=seed)
    unpaired = make_unpaired_demo(out, size=size, crops_per_photo=crops_per_photo, seed=seed)
    for name in ("edges2photo", "gray2color"):
        counts = ", ".join(
            f"{split} {len(list((folder / name / split).glob('*.png')))}" for split in ("train", "val", "test")
        )
        click.echo(f"{folder / name}: {counts}")
    counts = ", ".join(f"{d} {len(list((unpaired / d).glob('*.png')))}" for d in ("trainA", "trainB", "testA", "testB"))
    click.echo(f"{unpaired}: {counts}")
