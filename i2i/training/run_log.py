"""What a run shows and keeps: the progress bar and printed lines, ``metrics.jsonl`` and
TensorBoard scalars. Only the main process writes; the others stay silent."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from i2i.config import RunConfig
from i2i.errors import TrainingError
from i2i.files import atomic_write_bytes
from i2i.training.distributed import broadcast_object

__all__ = ["RunLog", "new_run_dir"]


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


class RunLog:
    """The run's progress bar, messages and metric records (``enabled`` on the main process)."""

    def __init__(self, run_dir: Path, *, enabled: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self._bar = None
        self._tb = None

    def print(self, message: str) -> None:
        """A line for the user, above the progress bar when there is one."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

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
        """Append ``record`` to ``metrics.jsonl`` and its numbers to TensorBoard (by ``record["step"]``)."""
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:  # a full disk: the checkpoint that follows reports it; a log never stops a run
            self.print(f"Warning: could not append to {self.run_dir / 'metrics.jsonl'} ({exc.strerror or exc}).")
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
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
