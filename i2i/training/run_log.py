"""What a run shows and keeps: the progress bar and printed lines (also appended, time-stamped, to
``train.log``), ``metrics.jsonl``, TensorBoard scalars and, when ``train.wandb`` is on, a Weights &
Biases run. Only the main process writes; the others stay silent."""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from i2i.config import RunConfig
from i2i.errors import ConfigError, TrainingError, UsageError
from i2i.files import atomic_write_bytes
from i2i.training.distributed import broadcast_object

__all__ = ["RunLog", "WandbRun", "new_run_dir", "start_banner"]


def new_run_dir(config: RunConfig, world_size: int) -> Path:
    """The folder of a new run: ``train.output_dir / train.name`` (a timestamped name when empty,
    the same on every rank). A folder that already holds checkpoints is refused."""
    t = config.train
    name = broadcast_object(t.name or f"{config.task.name}_{time.strftime('%Y%m%d-%H%M%S')}", world_size)
    run_dir = Path(t.output_dir) / name
    if (run_dir / "checkpoints").exists():
        raise TrainingError(
            f"Run folder {str(run_dir)!r} already holds checkpoints. Continue it with "
            f"`--resume {run_dir}`, or choose another name with --set train.name=NEW."
        )
    return run_dir


class WandbRun:
    """A Weights & Biases run mirroring ``metrics.jsonl`` (``train.wandb``). ``wandb`` is imported
    here only, so a run without it never loads the package. Its files go to ``$WANDB_DIR``, else
    into the run folder; ``WANDB_MODE=offline`` keeps them local. A resumed run continues the same
    W&B run (its id is kept in ``RUN/wandb_id``)."""

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError(
                "train.wandb is on but the wandb package is not installed: pip install 'i2i-toolkit[wandb]' "
                "(or drop --wandb / set train.wandb=false)."
            ) from None
        self._wandb = wandb
        self.run_dir, self.config = run_dir, config
        self._run: Any = None

    def log(self, record: dict[str, Any]) -> None:
        """The numbers of ``record`` at ``record["step"]`` (after :meth:`start`)."""
        if self._run is None:
            self.start()
        numbers = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._run.log(numbers, step=int(record["step"]))

    def start(self) -> None:
        """Start (or on resume, continue) the W&B run, before the first step, so that a login or
        network problem stops the run at once, as one line."""
        id_file = self.run_dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)
        atomic_write_bytes(id_file, run_id.encode())
        t = self.config.train
        try:
            self._run = self._wandb.init(
                project=t.wandb_project, name=t.wandb_name or self.run_dir.name, id=run_id, resume="allow",
                dir=os.environ.get("WANDB_DIR") or str(self.run_dir), config=dataclasses.asdict(self.config),
            )
        except Exception as exc:  # wandb's own errors (no API key, no network) have no common base
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
            raise UsageError(
                f"Weights & Biases did not start: {reason}. Run "
                "`wandb login`, or keep the run local with WANDB_MODE=offline, or drop --wandb / train.wandb."
            ) from None

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def start_banner(
    *, task: str, device: str, precision: str, processes: int, train_items: int, val_items: int | None,
    data_root: str, batch_size: int, steps: int, steps_per_epoch: int, start_step: int, run_dir: Path,
) -> str:
    """The lines ``i2i train`` prints before its first step: what runs where, on what, how long."""
    validation = f"{val_items} validation" if val_items is not None else "no validation"
    epochs = steps / max(steps_per_epoch, 1)
    start = f"; resumed at step {start_step}" if start_step else ""
    return "\n".join([
        f"Training {task} on {device} ({precision}, {processes} process{'es' if processes > 1 else ''}).",
        f"  data:   {train_items} training / {validation} items from {data_root}",
        f"  steps:  {steps} ({epochs:.3g} epoch{'' if epochs == 1 else 's'} of {steps_per_epoch} steps), "
        f"batch size {batch_size} per process{start}",
        f"  run:    {run_dir} (index.html, train.log, metrics.jsonl, checkpoints/)",
    ])


class RunLog:
    """The run's progress bar, messages and metric records (``enabled`` on the main process).

    Lines go to ``train.log`` too, appended (a resumed run continues the same file); lines from
    before the run folder exists are kept and written with the first line after."""

    def __init__(self, run_dir: Path, *, enabled: bool, config: RunConfig | None = None) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self._bar: Any = None
        self._tb: Any = None
        self._tb_wanted = config.train.tensorboard if config is not None else True
        self._pending: list[str] = []
        # Checked at once, so a missing package stops the run before anything is written.
        self._wandb = WandbRun(run_dir, config) if enabled and config is not None and config.train.wandb else None

    def print(self, message: str) -> None:
        """A line for the user, above the progress bar when there is one, and in ``train.log``."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)
        self.note(message)

    def note(self, message: str) -> None:
        """A line for ``train.log`` only (the periodic losses, say), time-stamped."""
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._pending.extend(f"{stamp} {line}\n" for line in message.splitlines() or [""])
        if not self.run_dir.is_dir():
            return
        try:
            with open(self.run_dir / "train.log", "a", encoding="utf-8") as f:
                f.write("".join(self._pending))
            self._pending.clear()
        except OSError:  # a full disk: metrics.jsonl's warning and the checkpoint report it
            self._pending.clear()

    def start(self) -> None:
        """Once the run folder exists, before the first step: start the W&B run when it is on."""
        if self._wandb is not None:
            self._wandb.start()

    def open_progress(self, *, total: int, initial: int, desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, disable=not self.enabled, desc=desc, unit="step", dynamic_ncols=True)

    def advance(self) -> None:
        """One step done."""
        if self._bar is not None:
            self._bar.update(1)

    def show(self, postfix: dict[str, str]) -> None:
        """Figures shown after the bar (the latest losses)."""
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)

    def repair(self, step: int) -> None:
        """Make ``metrics.jsonl`` fit a run resumed at ``step``: records past ``step`` (logged after
        the checkpoint, then lost with the process) are dropped, since the resumed run logs those
        steps again; a torn or unparsable line (a full disk, a kill mid-write) is dropped with a
        warning naming the file and line. A log never stops a resume."""
        path = self.run_dir / "metrics.jsonl"
        if not self.enabled or not path.is_file():
            return
        kept, dropped, damaged = [], 0, 0
        for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                later = record.get("step", 0) > step
            except (ValueError, TypeError, AttributeError):
                self.print(f"Warning: {path} line {number} is damaged (cut short?); skipping it.")
                damaged += 1
                continue
            if later:
                dropped += 1
            else:
                kept.append(line + "\n")
        if not (dropped or damaged):
            return
        if dropped:
            self.print(f"{path}: dropped {dropped} record(s) after step {step}, which this run logs again.")
        try:
            atomic_write_bytes(path, "".join(kept).encode())
        except OSError as exc:
            self.print(f"Warning: could not rewrite {path} ({exc.strerror or exc}); it keeps the lines above.")

    def event(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` and its numbers to TensorBoard and W&B (by ``record["step"]``)."""
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # a full disk: the checkpoint that follows reports it; a log never stops a run
            self.print(f"Warning: could not append to {self.run_dir / 'metrics.jsonl'} ({exc.strerror or exc}).")
        self._log_tensorboard(record)
        if self._wandb is not None:
            self._wandb.log(record)

    def _log_tensorboard(self, record: dict[str, Any]) -> None:
        if self._tb is None and self._tb_wanted:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # torch's writer needs the tensorboard package, an optional extra
                self._tb_wanted = False
                self.print("TensorBoard logging is off (pip install 'i2i-toolkit[tensorboard]' to have it); "
                           "metrics.jsonl and the run page hold every number.")
                return
            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        if self._tb is None:
            return
        for k, v in record.items():
            if k not in ("step", "epoch") and isinstance(v, (int, float)):
                self._tb.add_scalar(k, v, record["step"])
        self._tb.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.close()
