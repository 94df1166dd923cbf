"""The training command."""
from __future__ import annotations

from pathlib import Path

import click

from i2i.cli_common import CONTEXT, user_errors


@click.command(context_settings=CONTEXT)
@click.argument("config", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. train.max_steps=100.")
@click.option("--resume", type=click.Path(exists=True, path_type=Path), help="Run folder or checkpoint file to continue.")
@click.option("--init-from", metavar="MODEL", help="Start the generator from a trained file, run folder, bundled name (x4), pretrained name "
              "(`i2i models --pretrained`, e.g. facades_label2photo) or URL.")
@click.option("--wandb", "use_wandb", is_flag=True, help="Also log to Weights & Biases (train.wandb=true; needs pip install 'i2i-toolkit[wandb]'; "
              "WANDB_MODE=offline keeps it local).")
@click.option("--dry-run", is_flag=True, help="Check the config, device and data folder, print the resolved config and exit; writes nothing.")
@user_errors
def train(
    config: str | None, overrides: tuple[str, ...], resume: Path | None, init_from: str | None, use_wandb: bool, dry_run: bool
) -> None:
    """Train with CONFIG, a YAML file or a built-in recipe name (see `i2i recipes`).

    Runs on one process or under torchrun on N (DDP); only rank 0 writes files. Ctrl-C or SIGTERM
    stops after the current step, saves a checkpoint and exits with status 130 or 143; continue
    with --resume RUN.

    \b
    Examples:
      i2i train configs/pix2pix_facades.yaml --set data.root=datasets/facades
      i2i train pix2pix_demo --set data.root=demo/data/edges2photo --dry-run
      i2i train --resume runs/pix2pix_facades
      i2i train configs/pix2pix_finetune.yaml --init-from latest_net_G.pth --set data.root=my_pairs
      i2i train pix2pix_demo --wandb --set train.wandb_project=edges
      torchrun --nproc_per_node 4 -m i2i.cli train configs/pix2pix_facades.yaml
    """
    import i2i.tasks  # noqa: F401  (registers the tasks, so the config's task section parses)
    from i2i.config import dump_config, load_config
    from i2i.errors import UsageError
    from i2i.recipes import resolve_config_path

    if init_from:
        overrides = (*overrides, f"task.init_from={init_from}")
    if use_wandb:
        overrides = (*overrides, "train.wandb=true")
    if resume is None and config is None:
        raise UsageError("Give a CONFIG (file or recipe name), or --resume RUN.")
    from i2i.training.preflight import check_run

    if dry_run:
        from i2i.training.checkpointing import load_resume

        if resume is not None:
            run_config = load_resume(resume, overrides)[1]
        else:
            assert config is not None  # checked above
            run_config = load_config(resolve_config_path(config), overrides)
        check_run(run_config)
        click.echo(dump_config(run_config), nl=False)
        return

    from i2i.trainer import Trainer

    if resume is not None:
        trainer = Trainer(resume=resume, overrides=overrides)  # fit() checks the data root first
    else:
        assert config is not None  # checked above
        run_config = load_config(resolve_config_path(config), overrides)
        check_run(run_config)  # before any process group, host-memory setting or run folder
        trainer = Trainer(run_config)
    run_dir = trainer.fit()
    if trainer.is_main:
        click.echo(f"Run folder: {run_dir}")
    if trainer.stopped:
        # 128 + the signal number, as a shell reports a process the signal ended: a scheduler
        # (or a script) can tell an interrupted run from a finished one. The trainer saved it and
        # printed `i2i train --resume RUN`.
        raise click.exceptions.Exit(128 + int(trainer.stop.signal or 2))
