"""The training command."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors


@click.command(context_settings=CONTEXT)
@click.argument("config", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.max_steps=100.")
@click.option("--resume", type=click.Path(exists=True, path_type=Path), help="Run folder or checkpoint file to continue.")
@click.option("--init-from", metavar="MODEL", help="Start the generator from a trained file, run folder or bundled name (x4).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@user_errors
def train(config: str | None, overrides: tuple[str, ...], resume: Path | None, init_from: str | None, dry_run: bool) -> None:
    """Train with CONFIG, a YAML file or a built-in recipe name (see `i2i recipes`).

    Runs on one process or under torchrun on N (DDP); only rank 0 writes files.

    \b
    Examples:
      i2i train configs/pix2pix_facades.yaml --set data.root=datasets/facades
      i2i train pix2pix_demo --set data.root=demo/data/edges2photo --dry-run
      i2i train --resume runs/pix2pix_facades
      i2i train configs/pix2pix_finetune.yaml --init-from latest_net_G.pth --set data.root=my_pairs
      torchrun --nproc_per_node 4 -m i2i.cli train configs/pix2pix_facades.yaml
    """
    from i2i.config import dump_config, load_config
    from i2i.recipes import resolve_config_path
    from i2i.trainer import Trainer

    if init_from:
        overrides = (*overrides, f"task.init_from={init_from}")
    if resume is not None:
        trainer = Trainer(resume=resume, overrides=overrides)
    elif config is None:
        raise click.UsageError("Give a CONFIG (file or recipe name), or --resume RUN.")
    else:
        trainer = Trainer(load_config(resolve_config_path(config), overrides))
    if dry_run:
        click.echo(dump_config(trainer.config), nl=False)
        return
    run_dir = trainer.fit()
    if trainer.is_main:
        click.echo(f"Run folder: {run_dir}")
