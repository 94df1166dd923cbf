"""``i2i data ...``: download public data sets, combine paired folders, build offline demo data,
extract frames of a video.

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
@click.option("--overwrite", is_flag=True, help="Replace pairs that already exist in OUT (never an input).")
@user_errors
def combine_command(a_dir: Path, b_dir: Path, out: Path, overwrite: bool) -> None:
    """Write aligned A|B pairs (pix2pix format) from two folders matched by relative path.

    A_DIR/train/0001.jpg and B_DIR/train/0001.png become OUT/train/0001.png with A on the
    left and B on the right. Unmatched names, size mismatches and outputs that already exist
    (without --overwrite) are all listed before anything is written.

    \b
    Example:
      i2i data combine photos/sketches photos/colour datasets/sketch2photo
    """
    from i2i.data.combine import combine_folders

    written = combine_folders(a_dir, b_dir, out, progress=True, overwrite=overwrite)
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

    Works offline: the photos ship with scikit-image. val and test come
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


@data_group.command("frames")
@click.argument("video", type=click.Path(dir_okay=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--every", default=1, show_default=True, type=int, metavar="N",
              help="Keep every Nth frame of the range (its first frame, then N frames apart).")
@click.option("--scene-change", type=float, default=None, metavar="THRESHOLD",
              help="Keep a frame only when it differs from the last kept one by more than THRESHOLD: the mean "
                   "absolute difference of the two frames in gray, shrunk to 64 px, as a fraction of full scale "
                   "(0-1; 0.1-0.3 suits most footage). With --every, only every Nth frame is compared.")
@click.option("--start", default=None, help="First frame: a frame number (120) or a time (5s, 2.5s, 1:30).")
@click.option("--end", default=None, help="Stop before this frame: a frame number or a time (exclusive).")
@click.option("--max-frames", type=int, default=None, metavar="N", help="Stop after N frames are kept.")
@click.option("--ext", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="Frame format: png (lossless, for training) or jpg.")
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG quality (default 95).")
@click.option("--overwrite", is_flag=True, help="Replace frame files that already exist (default: leave them).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@user_errors
def frames_command(video: Path, out: Path, every: int, scene_change: float | None, start: str | None,
                   end: str | None, max_frames: int | None, ext: str, quality: int | None, overwrite: bool,
                   quiet: bool) -> None:
    """Extract frames of VIDEO into the folder OUT: HR images to fine-tune an SR model on your footage.

    Frames are named by their index in the video, OUT/VIDEO-STEM_000123.png, and written
    atomically. Files already in OUT are left as they are (a rerun completes an interrupted one)
    unless --overwrite. Without --every or --scene-change every frame of the range is kept.

    \b
    Examples:
      i2i data frames my_clip.mp4 frames/ --every 10
      i2i data frames my_clip.mp4 frames/ --scene-change 0.15 --max-frames 200
      i2i data frames film.mkv frames/ --start 1:30 --end 2:00 --every 12 --ext jpg
      i2i train finetune_realesrgan_x4plus --set data.root=frames
    """
    from i2i.data.frames import extract_frames

    report = extract_frames(video, out, every=every, scene_change=scene_change, start=start, end=end,
                            max_frames=max_frames, ext=ext, quality=quality, overwrite=overwrite,
                            progress=not quiet)
    last = report.first + report.decoded - 1
    already = f", {report.existing} already there" if report.existing else ""
    click.echo(f"kept {len(report.kept)} of frames {report.first}-{last} of {video.name}: "
               f"wrote {report.written}{already}, in {out}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
