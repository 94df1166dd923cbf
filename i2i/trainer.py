"""The common training loop for every task.

Mechanics only: device and precision, DDP through torchrun, learning-rate schedules, EMA,
checkpoints and exact resume, signals, logging (progress bar, ``metrics.jsonl``, TensorBoard,
sample grids and an HTML page) and validation. The algorithm lives in the task.

Run folder layout::

    RUN/config.yaml            the resolved config
    RUN/checkpoints/latest.pt  full training state (also step_NNNNNNN.pt, the last K kept)
    RUN/generator.safetensors  exported generator(s), self-describing (plus *_ema when EMA is on)
    RUN/metrics.jsonl          one JSON object per log or validation event
    RUN/tb/                    TensorBoard scalars
    RUN/samples/step_*.png     input | output | target grids
    RUN/index.html             the samples and latest metrics, by step
"""
from __future__ import annotations

import contextlib
import copy
import html
import io
import json
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from i2i.checkpoint import load_training_state, save_generator, save_training_state
from i2i.config import RunConfig, dump_config, parse_config
from i2i.errors import DataError, TrainingError
from i2i.imageops import to_unit_range
from i2i.data.datasets import ResumableSampler, collate, steps_per_epoch
from i2i.data.io import write_image
from i2i.host_memory import keep_freed_host_memory

__all__ = ["Trainer", "TrainingError", "resolve_device", "resolve_precision", "seed_everything", "find_checkpoint"]


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when available (the local rank's GPU under torchrun), else CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device is {spec!r} but CUDA is not available here; use train.device=cpu.")
    return device


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` is bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU."""
    if spec == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[spec]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def find_checkpoint(path: str | Path) -> Path:
    """The training state to resume from: a ``.pt`` file, or a run folder's latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise TrainingError(f"No checkpoint at {str(path)!r}; pass a run folder or a checkpoint file to --resume.")
    return path


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module)


class Trainer:
    """Runs a task. Build it from a config and call :meth:`fit`.

    ``resume`` is a run folder or checkpoint file; the run continues from its exact step with the
    config stored in the checkpoint (``overrides`` may change it, e.g. to extend ``max_steps``).
    """

    def __init__(self, config: RunConfig | None = None, *, resume: str | Path | None = None, overrides: tuple[str, ...] = ()):
        self.resume_state: dict[str, Any] | None = None
        if resume is not None:
            ckpt = find_checkpoint(resume)
            self.resume_state = load_training_state(ckpt)
            import yaml

            from i2i.config import apply_overrides

            raw = apply_overrides(yaml.safe_load(self.resume_state["config"]), overrides)
            config = parse_config(raw)
            self.run_dir = ckpt.parent.parent
        elif config is None:
            raise ValueError("Trainer needs a config or a checkpoint to resume.")
        self.config = config
        self.rank, self.world_size, self.local_rank = self._setup_distributed()
        self.device = resolve_device(config.train.device, self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = not config.train.deterministic
        if self.device.type == "cpu" and config.train.host_memory_cache:
            keep_freed_host_memory()
        self.autocast_dtype = resolve_precision(config.train.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        if self.resume_state is None:
            self.run_dir = self._new_run_dir()
        self.is_main = self.rank == 0
        self.step = 0
        self.task = None
        self._stop_signal: int | None = None  # received by this process
        self._stopping = False  # agreed by every rank; the loop ends at this step
        self._tb = None
        self._bar = None

    # --- set-up -------------------------------------------------------------------------------
    def _setup_distributed(self) -> tuple[int, int, int]:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            wants_cuda = self.config.train.device in ("auto", "cuda") and torch.cuda.is_available()
            dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        if dist.is_initialized():
            return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        return 0, 1, 0

    def _new_run_dir(self) -> Path:
        t = self.config.train
        name = t.name or f"{self.config.task.name}_{time.strftime('%Y%m%d-%H%M%S')}"
        if self.world_size > 1:
            shared = [name]
            dist.broadcast_object_list(shared, src=0)
            name = shared[0]
        run_dir = Path(t.output_dir) / name
        if (run_dir / "checkpoints").exists():
            raise TrainingError(
                f"Run folder {str(run_dir)!r} already holds checkpoints. Continue it with "
                f"`--resume {run_dir}`, or choose another name with --set train.name=NEW."
            )
        return run_dir

    def _wrap(self, module: nn.Module) -> nn.Module:
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        if self.config.train.compile:
            module = torch.compile(module)
        return module

    def _build_loader(self, dataset, *, train: bool) -> tuple[DataLoader, ResumableSampler]:
        sampler = ResumableSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=train, seed=self.config.seed
        )
        workers = self.config.data.num_workers
        loader = DataLoader(
            dataset,
            batch_size=self.config.data.batch_size if train else 1,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            # Workers are made anew each epoch so they see the data set's set_epoch().
            persistent_workers=False,
            # The loader draws its worker seeds from its own generator so that creating an
            # iterator never advances the global RNG (which resume restores exactly).
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        return loader, sampler

    def _total_steps(self, spe: int) -> int:
        t, s = self.config.train, self.config.schedule
        if t.max_steps:
            return t.max_steps
        epochs = t.epochs or (s.n_epochs + s.n_epochs_decay)
        return epochs if s.unit == "step" and not t.epochs else epochs * spe

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier after ``step`` optimiser steps."""
        s = self.config.schedule
        unit = step if s.unit == "step" else step // self.steps_per_epoch
        if s.policy == "linear":
            return 1.0 - max(0, unit + 1 - s.n_epochs) / float(s.n_epochs_decay + 1)
        if s.policy == "step":
            return s.gamma ** (unit // s.step_size)
        if s.policy == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        return 1.0

    # --- what tasks call ------------------------------------------------------------------------
    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backpropagate ``loss`` and step ``optimizer`` (AMP scaling and DDP handled here)."""
        with torch.autocast(self.device.type, enabled=False):
            self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    def adam(self, params, *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam over ``params``; fused into one kernel per step when ``train.fused_optimizer``.

        The fused update reads and writes each parameter's state once; torch's default on the CPU
        loops over the parameters one by one, which costs 0.35 s a step for a 54M-parameter U-Net
        on two cores against 0.05 s fused (docs/benchmarks.md).
        """
        params = list(params)
        fused = self.config.train.fused_optimizer and all(p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # --- the loop ---------------------------------------------------------------------------------
    def setup_task(self):
        """Build the task, place its networks on the device, wrap them, create the optimizers.

        Networks (and EMA copies) come from the resume checkpoint when there is one. Returns the task.
        """
        from i2i.tasks import TASKS

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
        self.ema: dict[str, nn.Module] = {}
        if cfg.train.ema_decay > 0:
            for name in task.ema_networks:
                ema = copy.deepcopy(task.networks[name]).eval()
                ema.requires_grad_(False)
                if state is not None and name in state.get("ema", {}):
                    ema.load_state_dict(state["ema"][name])
                self.ema[name] = ema
        task.attach(self, {name: self._wrap(m) for name, m in task.networks.items()})
        self.optimizers = task.configure_optimizers()
        return task

    def fit(self) -> Path:
        """Train to the configured length; returns the run folder."""
        cfg = self.config
        # A task already set up (to inject a feature network, say) is used as it is.
        task = self.task if self.task is not None else self.setup_task()
        state = self.resume_state

        train_set = task.build_dataset(cfg.data.train_split, train=True)
        loader, sampler = self._build_loader(train_set, train=True)
        self.steps_per_epoch = steps_per_epoch(len(train_set), cfg.data.batch_size, self.world_size)
        self.total_steps = self._total_steps(self.steps_per_epoch)
        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor) for name, opt in self.optimizers.items()
        }
        try:
            val_set = task.build_dataset(cfg.data.val_split, train=False)
            self.val_loader = self._build_loader(val_set, train=False)[0]
        except DataError as exc:
            self.val_loader = None
            self._print(f"Validation is off: {exc}".splitlines()[0])

        if state is not None:
            for name, opt in self.optimizers.items():
                saved = state["optimizers"][name]
                # How the update runs (fused, foreach) is this run's setting, not the checkpoint's;
                # torch would otherwise restore it from the saved groups.
                groups = [
                    {**group, **{k: live[k] for k in ("fused", "foreach") if k in live}}
                    for group, live in zip(saved["param_groups"], opt.param_groups)
                ]
                opt.load_state_dict({**saved, "param_groups": groups})
            for name, sched in self.schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            self.scaler.load_state_dict(state["scaler"])
            task.load_extra_state(state.get("task", {}))
            self.step = int(state["step"])
            _set_rng_state(state["rng"][self.rank] if self.rank < len(state["rng"]) else state["rng"][0])
        else:
            # Identical initial weights on every rank, then different augmentation per rank.
            seed_everything(cfg.seed + self.rank)
            if self.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "config.yaml").write_text(dump_config(cfg))

        self._install_signal_handlers()
        try:
            self._loop(loader, sampler)
        finally:
            self._restore_signal_handlers()
            if self._bar is not None:
                self._bar.close()
            if self._tb is not None:
                self._tb.close()
        return self.run_dir

    def _loop(self, loader: DataLoader, sampler: ResumableSampler) -> None:
        cfg = self.config.train
        from tqdm import tqdm

        self._bar = tqdm(
            total=self.total_steps, initial=self.step, disable=not self.is_main, desc=self.task.name, unit="step", dynamic_ncols=True
        )
        sums: dict[str, torch.Tensor] = {}
        count = 0
        sample_batch = self._validation_sample_batch()
        while self.step < self.total_steps and not self._stopping:
            epoch, done_in_epoch = divmod(self.step, self.steps_per_epoch)
            sampler.set_epoch(epoch, skip=done_in_epoch * self.config.data.batch_size)
            if hasattr(loader.dataset, "set_epoch"):  # data sets that draw per-epoch pairings
                loader.dataset.set_epoch(epoch)
            for batch in loader:
                batch = self._to_device(batch)
                if sample_batch is None:  # no validation split: show training images
                    sample_batch = {k: v[:4] for k, v in batch.items()}
                batch = self.task.augment(batch, train=True)
                with self.autocast():
                    losses = self.task.train_step(batch)
                self.scaler.update()
                for sched in self.schedulers.values():
                    sched.step()
                self._update_ema()
                self.step += 1
                self._bar.update(1)
                for k, v in losses.items():
                    sums[k] = sums[k] + v.float() if k in sums else v.float()
                count += 1
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    self._log_losses(sums, count, epoch)
                    sums, count = {}, 0
                    self._sync_stop_signal()
                if self.step % cfg.sample_every == 0:
                    self._save_samples(sample_batch)
                if self.step % cfg.val_every == 0:
                    self.validate()
                if self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint(keep=True)
                if self.world_size == 1 and self._stop_signal is not None:
                    self._stopping = True
                if self.step >= self.total_steps or self._stopping:
                    break
        if count:
            self._log_losses(sums, count, self.step // self.steps_per_epoch)
        self.save_checkpoint(keep=False)
        if self._stopping:
            self._print(f"Stopped by signal {self._stop_signal} at step {self.step}; resume with --resume {self.run_dir}")
            return
        if sample_batch is not None and self.step % cfg.sample_every:
            self._save_samples(sample_batch)
        if self.step % cfg.val_every:
            self.validate()

    def _validation_sample_batch(self, count: int = 4) -> dict | None:
        """The first ``count`` validation items, so every sample grid shows the same images."""
        if self.val_loader is None or not self.is_main:
            return None
        items = []
        for batch in self.val_loader:
            if items and batch["a"].shape != items[0]["a"].shape:
                break
            items.append(batch)
            if len(items) == count:
                break
        return {k: torch.cat([b[k] for b in items]) if torch.is_tensor(items[0][k]) else sum((b[k] for b in items), []) for k in items[0]}

    def _to_device(self, batch: dict) -> dict:
        out = {}
        for k, v in batch.items():
            if torch.is_tensor(v):
                v = v.to(self.device, non_blocking=True)
                if self.config.train.channels_last and self.device.type == "cuda" and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.train.ema_decay
        for name, ema in self.ema.items():
            live = self.task.networks[name]
            ema_params = list(ema.parameters())
            live_params = [p.detach() for p in live.parameters()]
            torch._foreach_lerp_(ema_params, live_params, 1.0 - decay)
            for b_ema, b_live in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b_live)

    # --- logging ------------------------------------------------------------------------------
    def _print(self, message: str) -> None:
        if self.is_main:
            if self._bar is not None:
                self._bar.write(message)
            else:
                print(message, flush=True)

    def _log_event(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        for k, v in record.items():
            if k not in ("step", "epoch") and isinstance(v, (int, float)):
                self._tb.add_scalar(k, v, record["step"])
        self._tb.flush()

    def _log_losses(self, sums: dict[str, torch.Tensor], count: int, epoch: int) -> None:
        if not sums:
            return
        names = list(sums)
        values = torch.stack([sums[k] for k in names]) / count
        if self.world_size > 1:
            dist.all_reduce(values)
            values /= self.world_size
        floats = values.tolist()  # the one host sync per log interval
        bad = [n for n, v in zip(names, floats) if not math.isfinite(v)]
        if bad:
            hint = " Use train.precision=bf16 or fp32 instead of fp16," if self.autocast_dtype == torch.float16 else ""
            raise TrainingError(
                f"Loss {', '.join(bad)} became {floats[names.index(bad[0])]} by step {self.step}.{hint} "
                "lower the learning rate, or check the data for broken images. The last checkpoint is intact."
            )
        record = {"step": self.step, "epoch": epoch, "lr": self.schedulers[next(iter(self.schedulers))].get_last_lr()[0]}
        record.update({f"loss/{n}": v for n, v in zip(names, floats)})
        self._log_event(record)
        if self._bar is not None:
            self._bar.set_postfix({n: f"{v:.3g}" for n, v in zip(names, floats)}, refresh=False)

    def _eval_networks(self) -> dict[str, nn.Module]:
        return {name: self.ema.get(name, module) for name, module in self.task.networks.items()}

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[dict[str, nn.Module]]:
        networks = self._eval_networks()
        modes = {name: m.training for name, m in networks.items()}
        for m in networks.values():
            m.eval()
        try:
            with torch.no_grad(), self.autocast():
                yield networks
        finally:
            for name, m in networks.items():
                m.train(modes[name])

    def _save_samples(self, batch: dict | None) -> None:
        if batch is None or not self.is_main:
            return
        batch = self.task.augment(self._to_device(batch), train=False)
        with self._eval_mode() as networks:
            images = self.task.predict(batch, networks)
        rows = []
        for group in self.task.sample_rows():
            columns = [to_unit_range(images[k], self.task.value_range) for k in group if k in images]
            height = max(c.shape[-2] for c in columns)
            for i in range(columns[0].shape[0]):
                cells = [c[i].expand(3, -1, -1) for c in columns]
                cells = [torch.nn.functional.pad(c, (0, 0, 0, height - c.shape[-2])) for c in cells]
                rows.append(torch.cat(cells, dim=2))
        width = max(r.shape[-1] for r in rows)
        grid = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[-1])) for r in rows], dim=1)
        image = (grid.permute(1, 2, 0).float().cpu().numpy() * 255.0).round().astype(np.uint8)
        write_image(self.run_dir / "samples" / f"step_{self.step:07d}.png", image)
        self._write_html()

    def _write_html(self) -> None:
        samples = sorted((self.run_dir / "samples").glob("step_*.png"), reverse=True)
        latest: dict[str, Any] = {}
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                latest.update(json.loads(line))
        columns = "; ".join(" | ".join(group) for group in self.task.sample_rows())
        rows = "\n".join(
            f"<h3>step {int(p.stem.split('_')[1])}</h3><img src='samples/{p.name}' style='image-rendering:pixelated;max-width:100%'>"
            for p in samples
        )
        table = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in latest.items() if isinstance(v, float))
        page = (
            f"<!doctype html><meta charset='utf-8'><title>{html.escape(self.run_dir.name)}</title>"
            f"<h1>{html.escape(self.run_dir.name)}</h1><p>step {self.step} of {self.total_steps}. "
            f"Columns: {html.escape(columns)}.</p><table>{table}</table>{rows}"
        )
        (self.run_dir / "index.html").write_text(page)

    def validate(self) -> dict[str, float] | None:
        """Mean L1, PSNR and SSIM (in [0, 1]) of the validation split; logged and returned."""
        if self.val_loader is None:
            return None
        self._sync_buffers()
        totals: dict[str, float] = {}
        n = 0
        with self._eval_mode() as networks:
            for batch in self.val_loader:
                batch = self.task.augment(self._to_device(batch), train=False)
                values = self.task.validation_metrics(self.task.predict(batch, networks))
                for k, v in values.items():
                    totals[k] = totals.get(k, 0.0) + v
                n += 1
            if self.world_size > 1:
                t = torch.tensor([totals[k] for k in sorted(totals)] + [n], dtype=torch.float64, device=self.device)
                dist.all_reduce(t)
                totals, n = dict(zip(sorted(totals), t[:-1].tolist())), int(t[-1])
            result = {f"val/{k}": v / max(n, 1) for k, v in totals.items()}
            result.update({f"val/{k}": v for k, v in self.task.validation_summary(self.gather).items()})
        self._log_event({"step": self.step, **result})
        self._print(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate ``tensor`` from every rank along dim 0 (sizes may differ between ranks)."""
        if self.world_size == 1:
            return tensor
        buffer = io.BytesIO()
        torch.save(tensor.detach().cpu(), buffer)
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, buffer.getvalue())
        return torch.cat([torch.load(io.BytesIO(p), weights_only=True) for p in parts]).to(tensor.device)

    # --- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = [_rng_state()]
        if self.world_size > 1:
            # Each rank has its own augmentation RNG; gather them as bytes (tensors do not
            # survive all_gather_object's pickling here).
            buffer = io.BytesIO()
            torch.save(rng[0], buffer)
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, buffer.getvalue())
            rng = [torch.load(io.BytesIO(b), weights_only=True) for b in gathered]
        return {
            "format": "i2i-training-state-1",
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "networks": {n: {k: v.cpu() for k, v in m.state_dict().items()} for n, m in self.task.networks.items()},
            "ema": {n: {k: v.cpu() for k, v in m.state_dict().items()} for n, m in self.ema.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "task": self.task.extra_state(),
            "rng": rng,
            "config": dump_config(self.config),
        }

    def _sync_buffers(self) -> None:
        # DDP broadcasts buffers (BatchNorm statistics) only at the start of a forward, so after a
        # step each rank holds its own; make rank 0's the ones every rank validates and saves.
        if self.world_size > 1:
            for module in [*self.task.networks.values(), *self.ema.values()]:
                for buffer in module.buffers():
                    dist.broadcast(buffer, src=0)

    def save_checkpoint(self, *, keep: bool) -> None:
        """Write ``latest.pt`` (and ``step_N.pt`` when ``keep``) and export the generators."""
        self._sync_buffers()
        state = self.state_dict()
        if not self.is_main:
            return
        folder = self.run_dir / "checkpoints"
        if keep:
            save_training_state(folder / f"step_{self.step:07d}.pt", state)
            kept = sorted(folder.glob("step_*.pt"))
            for old in kept[: max(0, len(kept) - self.config.train.keep_last)]:
                old.unlink()
        save_training_state(folder / "latest.pt", state)
        for stem, (name, info) in self.task.exported_generators().items():
            save_generator(self.run_dir / f"{stem}.safetensors", _unwrap(self.task.networks[name]), info)
            if name in self.ema:
                save_generator(self.run_dir / f"{stem}_ema.safetensors", self.ema[name], info)

    # --- signals ------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        self._previous_handlers = {}
        if threading_is_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_signal = signum
        self._print("Stopping after this step and saving a checkpoint (press Ctrl-C again to abort).")

    def _sync_stop_signal(self) -> None:
        # Every rank must stop at the same step, or the collectives would hang.
        if self.world_size > 1:
            flag = torch.tensor([0 if self._stop_signal is None else self._stop_signal], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if int(flag):
                self._stop_signal = self._stop_signal or int(flag)
                self._stopping = True


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
