"""The common training loop for every task.

Mechanics only; the algorithm lives in the task, which sees the loop through
:class:`i2i.tasks.context.TrainingContext`. The loop is small: each step runs the task's
``train_step`` between the hooks of :mod:`i2i.training.hooks` (learning-rate schedules, EMA,
progress, loss logging, checkpoints, sample grids, validation); the parts those hooks use live in
:mod:`i2i.training`, one job each.

Run folder layout::

    RUN/config.yaml            the resolved config
    RUN/checkpoints/latest.pt  full training state (also step_NNNNNNN.pt, the last K kept)
    RUN/generator.safetensors  exported generator(s), self-describing (plus *_ema when EMA is on)
    RUN/metrics.jsonl          one JSON object per log or validation event
    RUN/train.log              the lines the run printed, time-stamped (a resumed run appends)
    RUN/tb/                    TensorBoard scalars
    RUN/wandb/, RUN/wandb_id   the Weights & Biases run, when train.wandb is on
    RUN/samples/step_*.png     input | output | target grids
    RUN/index.html             loss and validation curves, validation numbers by step, samples
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

import i2i.tasks  # noqa: F401  (registers the tasks, so run configs parse)
from i2i.config import RunConfig, dump_config, load_config
from i2i.data.datasets import ResumableSampler, steps_per_epoch
from i2i.device import resolve_device, resolve_precision
from i2i.errors import DataError, TrainingError, UsageError
from i2i.files import remove_stale_temporaries
from i2i.host_memory import keep_freed_host_memory
from i2i.shard import current_shard
from i2i.tasks import TASKS, Task
from i2i.training.checkpointing import (
    find_checkpoint,
    load_resume,
    preserved_rng,
    restore_training_state,
    save_checkpoint,
    seed_everything,
)
from i2i.training.data import build_loader, to_device
from i2i.training.distributed import broadcast_buffers, init_distributed, wrap_for_training
from i2i.training.ema import EMA
from i2i.training.hooks import Hook, default_hooks
from i2i.training.loop_context import LoopContext
from i2i.training.preflight import check_inputs
from i2i.training.run_log import RunLog, new_run_dir, start_banner
from i2i.training.schedule import build_schedulers, total_steps
from i2i.training.signals import StopRequest
from i2i.training.validation import evaluate, evaluation_mode

# load_config is offered here too: parsing a run config needs the tasks registered, which
# importing this module does (i2i.load_config resolves to it).
__all__ = ["Trainer", "TrainingError", "load_config", "seed_everything", "find_checkpoint"]


class Trainer:
    """Runs a task. Build it from a config and call :meth:`fit`.

    ``resume`` is a run folder or checkpoint file; the run continues from its exact step with the
    config stored in the checkpoint (``overrides`` may change it, e.g. to extend ``max_steps``).
    """

    def __init__(self, config: RunConfig | None = None, *, resume: str | Path | None = None, overrides: tuple[str, ...] = ()):
        self.resume_state: dict[str, Any] | None = None
        if resume is not None:
            self.resume_state, config, self.run_dir = load_resume(resume, overrides)
        elif config is None:
            raise UsageError("Trainer needs a config, or a run folder to resume (resume=RUN).")
        self.config = config
        t = config.train
        # The device first: a wrong one is reported before any process group or file exists.
        self.device = resolve_device(t.device, option="train.device", local_rank=current_shard().local_rank)
        self.autocast_dtype = resolve_precision(t.precision, self.device, training=True, option="train.precision")
        ranks = init_distributed(self.device)
        self.rank, self.world_size, self.local_rank = ranks.rank, ranks.world_size, ranks.local_rank
        self.is_main = ranks.is_main
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = not t.deterministic
        if self.device.type == "cpu" and t.host_memory_cache:
            keep_freed_host_memory()
        if self.resume_state is None:
            self.run_dir = new_run_dir(config, self.world_size)
        self.run_log = RunLog(self.run_dir, enabled=self.is_main, config=config)
        self.context = LoopContext(self.device, self.autocast_dtype, fused_optimizer=t.fused_optimizer, printer=self.print)
        self.stop = StopRequest(self.print)
        self.step = 0
        self.task: Task | None = None
        self.ema = EMA({}, (), 0.0)
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self.val_loader: DataLoader | None = None
        self.data_sizes: tuple[int, int | None] = (0, None)  # training and validation items
        self.hooks: list[Hook] = []
        self._extra_hooks: list[Hook] = []
        self.batch: dict = {}
        self.losses: dict[str, torch.Tensor] = {}

    # --- what hooks and tasks share ---------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        """Whether a stop signal ended the run before its last step."""
        return self.stop.agreed

    def print(self, message: str) -> None:
        """A line for the user, from the main process only, above the progress bar."""
        self.run_log.print(message)

    def to_device(self, batch: dict) -> dict:
        return to_device(batch, self.device, channels_last=self.config.train.channels_last)

    @property
    def built_task(self) -> Task:
        """The task, once :meth:`setup_task` has built it (every step, hook and checkpoint runs after)."""
        if self.task is None:
            raise RuntimeError("the task is used before setup_task() built it")
        return self.task

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[dict[str, nn.Module]]:
        """The networks to evaluate (EMA copies where kept) in eval mode, without gradients; the
        random-number state is left as it was, so evaluating never changes training."""
        networks = self.ema.evaluation_networks(self.built_task.networks)
        with preserved_rng(), evaluation_mode(networks, self.context.autocast) as evaluated:
            yield evaluated

    def register_hooks(self, *hooks: Hook) -> None:
        """Add hooks that run after the default ones (:func:`i2i.training.hooks.default_hooks`)."""
        self._extra_hooks.extend(hooks)

    # --- set-up -----------------------------------------------------------------------------------
    def setup_task(self) -> Task:
        """Build the task, place its networks on the device, wrap them, attach the task (which
        builds its optimizers). Networks (and EMA copies) come from the resume checkpoint when
        there is one. Returns the task."""
        cfg = self.config
        seed_everything(cfg.seed)
        task = TASKS[cfg.task.name](cfg)
        self.task = task
        state = self.resume_state
        if state is not None:
            for name, module in task.networks.items():
                module.load_state_dict(state["networks"][name])
        for name, module in task.networks.items():
            module.to(self.device)
            if cfg.train.channels_last and self.device.type == "cuda":
                module.to(memory_format=torch.channels_last)
            if cfg.train.sync_batchnorm and self.world_size > 1:
                task.networks[name] = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        saved_ema = state.get("ema", {}) if state is not None else None
        self.ema = EMA(task.networks, task.ema_networks, cfg.train.ema_decay, saved_ema)
        wrapped = {
            name: wrap_for_training(m, self.device, self.world_size, compile=cfg.train.compile)
            for name, m in task.networks.items()
        }
        task.attach(self.context, wrapped)
        return task

    def _prepare_data(self, task: Task) -> tuple[DataLoader, ResumableSampler]:
        cfg = self.config
        ranks: dict[str, Any] = {"rank": self.rank, "world_size": self.world_size, "device": self.device}
        train_set = task.build_dataset(cfg.data.train_split, train=True)
        self.data_sizes = (len(train_set), None)
        loader, sampler = build_loader(train_set, cfg, train=True, **ranks)
        self.steps_per_epoch = steps_per_epoch(len(train_set), cfg.data.batch_size, self.world_size)
        self.total_steps = total_steps(cfg, self.steps_per_epoch)
        try:
            val_set = task.build_dataset(cfg.data.val_split, train=False)
            self.val_loader = build_loader(val_set, cfg, train=False, **ranks)[0]
            self.data_sizes = (len(train_set), len(val_set))
        except DataError as exc:
            self.val_loader = None
            self.print(f"Validation is off: {exc}".splitlines()[0])
        return loader, sampler

    def _start_or_resume(self) -> None:
        cfg = self.config
        if self.is_main:  # what a killed run left half-written; nothing else writes here
            for folder in (self.run_dir, self.run_dir / "checkpoints"):
                for path in remove_stale_temporaries(folder):
                    self.print(f"Removed {path}, left half-written by an interrupted run.")
        if self.resume_state is not None:
            restore_training_state(self, self.resume_state)
            self.run_log.repair(self.step)
            return
        # Identical initial weights on every rank, then different augmentation per rank.
        seed_everything(cfg.seed + self.rank)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to the configured length; returns the run folder."""
        check_inputs(self.config)  # before any network is built
        # A task already set up (to inject a feature network, say) is used as it is.
        task = self.task if self.task is not None else self.setup_task()
        loader, sampler = self._prepare_data(task)
        self.schedulers = build_schedulers(
            task.optimizers, self.config.schedule, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps
        )
        self._start_or_resume()
        self.print(self._banner())
        self.run_log.start()
        self.hooks = [*default_hooks(self.config), *self._extra_hooks]
        with self.stop.installed():
            try:
                self._loop(loader, sampler)
            finally:
                self.run_log.close()
        return self.run_dir

    def _banner(self) -> str:
        cfg = self.config
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]
        return start_banner(
            task=cfg.task.name, device=str(self.device), precision=precision, processes=self.world_size,
            train_items=self.data_sizes[0], val_items=self.data_sizes[1], data_root=cfg.data.root,
            batch_size=cfg.data.batch_size, steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
            start_step=self.step, run_dir=self.run_dir,
        )

    def _loop(self, loader: DataLoader, sampler: ResumableSampler) -> None:
        for hook in self.hooks:
            hook.before_train(self)
        batch_size = self.config.data.batch_size
        while self.step < self.total_steps and not self.stopped:
            epoch, done_in_epoch = divmod(self.step, self.steps_per_epoch)
            sampler.set_epoch(epoch, skip=done_in_epoch * batch_size)
            if hasattr(loader.dataset, "set_epoch"):  # data sets that draw per-epoch pairings
                loader.dataset.set_epoch(epoch)
            for batch in loader:
                self.run_step(batch)
                if self.step >= self.total_steps or self.stopped:
                    break
        for hook in self.hooks:
            hook.after_train(self)
        if self.stopped:
            self.print(
                f"Stopped by signal {self.stop.signal} at step {self.step} (checkpoint saved); "
                f"continue with: i2i train --resume {self.run_dir}"
            )

    def run_step(self, batch: dict) -> None:
        """One training step on a loader batch, between the hooks."""
        self.batch = self.to_device(batch)
        for hook in self.hooks:
            hook.before_step(self)
        task_batch = self.built_task.augment(dict(self.batch), train=True)
        with self.context.autocast():
            losses = self.built_task.train_step(task_batch)
        self.losses = {**losses, **self.context.take_logged()}
        self.context.end_iteration()
        self.step += 1
        for hook in self.hooks:
            hook.after_step(self)
        log_step = self.step % self.config.train.log_every == 0 or self.step == self.total_steps
        self.stop.should_stop(sync=log_step, device=self.device, world_size=self.world_size)

    # --- evaluation and checkpoints ------------------------------------------------------------
    def validate(self) -> dict[str, float] | None:
        """Mean L1, PSNR and SSIM (in [0, 1]) of the validation split, or the task's own metrics;
        logged and returned (None without a validation split)."""
        if self.val_loader is None:
            return None
        broadcast_buffers([*self.built_task.networks.values(), *self.ema.models.values()], self.world_size)
        with self.evaluating() as networks:
            result = evaluate(
                self.built_task, networks, self.val_loader, to_device=self.to_device,
                world_size=self.world_size, device=self.device, progress=self.is_main,
            )
        self.run_log.event({"step": self.step, **result})
        self.print(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    def save_checkpoint(self, *, keep: bool) -> None:
        """Write ``latest.pt`` (and ``step_N.pt`` when ``keep``) and export the generators."""
        save_checkpoint(self, keep=keep)
