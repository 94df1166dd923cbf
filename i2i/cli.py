"""The ``i2i`` command line: a thin layer over the Python API."""
from __future__ import annotations

from pathlib import Path

import click

from i2i import __version__
from i2i.cli_common import CONTEXT, user_errors


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="i2i")
def main() -> None:
    """i2i: image-to-image translation with pix2pix, CycleGAN and SRGAN.

    \b
    Examples:
      i2i demo                                   # the main job: x4 upscaling of real photos, a page
      i2i train pix2pix_demo --set train.max_steps=50
      i2i translate --model runs/RUN photos/ translated/
      i2i data demo datasets/demo
    """


@main.command(context_settings=CONTEXT)
@click.argument("out_dir", default="demo", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--kind", type=click.Choice(["upscale", "pix2pix"]), default="upscale", show_default=True,
    help="upscale: the bundled x4 model on real photos (seconds). pix2pix: build data, train on the CPU (under a minute on two cores), translate.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key of the pix2pix demo recipe.")
@user_errors
def demo(out_dir: Path, kind: str, overrides: tuple[str, ...]) -> None:
    """The main job on the embedded default, with a comparison page in OUT_DIR/index.html.

    \b
    Examples:
      i2i demo                                   # x4 upscaling of real photos, beside bicubic
      i2i demo --kind pix2pix                    # train pix2pix on the CPU (20 s on two quiet cores)
      i2i demo /tmp/i2i-demo --kind pix2pix --set train.max_steps=100
    """
    from i2i.demo import run_demo, run_upscale_demo

    page = run_upscale_demo(out_dir) if kind == "upscale" else run_demo(out_dir, overrides=overrides)
    click.echo(f"Comparison page: {page}")


@main.command(context_settings=CONTEXT)
@click.option("--pretrained", is_flag=True,
              help="List the named pretrained weights (pix2pix, CycleGAN, Real-ESRGAN) that --model NAME downloads.")
@user_errors
def models(pretrained: bool) -> None:
    """List the registered architectures, or with --pretrained the pretrained weights by name.

    \b
    Examples:
      i2i models                                 # architectures: unet_256, resnet_9blocks ...
      i2i models --pretrained                    # names, task, scale, size, licence, checksum, cached, URL
      i2i translate --model horse2zebra photos/ zebras/
      i2i upscale --model RealESRGAN_x4plus photo.jpg photo_x4.png
    """
    if pretrained:
        from i2i.catalogue import describe_pretrained

        click.echo(describe_pretrained())
        return
    from i2i.models import list_models

    for name in list_models():
        click.echo(name)


@main.command(context_settings=CONTEXT)
@user_errors
def recipes() -> None:
    """List the built-in training recipes (usable as CONFIG in `i2i train`)."""
    from i2i.recipes import list_recipes

    for name in list_recipes():
        click.echo(name)


def _add_command_modules() -> None:
    # Commands that live in their own modules, one module per area.
    from i2i.cli_data import data_group
    from i2i.cli_eval import eval_command
    from i2i.cli_infer import export, translate, upscale, video
    from i2i.cli_serve import serve
    from i2i.cli_test import test_command
    from i2i.cli_train import train

    main.add_command(data_group)
    main.add_command(eval_command)
    for command in (train, translate, upscale, video, export, serve, test_command):
        main.add_command(command)


_add_command_modules()

if __name__ == "__main__":
    main()
