"""The web UI's work: jobs in a queue, run one at a time on the device by one worker thread.

A job is a set of uploaded images, or one video, with the model and the options chosen on the page.
The worker loads the model through :func:`i2i.load` (the same loader as the command line; the last
translator is kept, so a second job with the same model starts at once), translates images with
:meth:`~i2i.inference.translator.Translator.translate_images` and videos with
:func:`i2i.inference.video.translate_video`, and writes every result into the job's own folder
inside the server's temporary work folder -- never next to anything the user owns. The page polls
:meth:`Job.as_json` for the state and the progress.
"""
from __future__ import annotations

import queue
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from i2i.errors import I2IError, UsageError

__all__ = ["Job", "JobItem", "JobQueue", "JobSettings", "MAX_QUEUED_JOBS", "load_translator"]

#: Jobs waiting at once; more are refused (the page says to wait) so a loop cannot fill the disk.
MAX_QUEUED_JOBS = 16
#: Finished jobs whose files are kept; older ones are deleted from the work folder.
KEPT_JOBS = 64
#: Formats every browser shows; other inputs (TIFF) get a PNG view for the before/after slider.
_BROWSER_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class JobSettings:
    """What the page chose: the model spec (already checked) and the translator's options."""

    model: str
    outscale: float | None = None
    tile: int | None = None
    precision: str = "auto"
    device: str = "auto"

    def translator_key(self) -> tuple:
        return (self.model, self.outscale, self.tile, self.precision, self.device)


@dataclass
class JobItem:
    """One input of a job and, once done, its result."""

    name: str  # the uploaded file's name, cleaned (shown and used for the download's name)
    source: Path  # the upload, inside the job folder
    view: Path | None = None  # what the browser shows as "before" (the source, or a PNG of it)
    result: Path | None = None
    download_name: str = ""
    size: tuple[int, int] | None = None  # (width, height)
    result_size: tuple[int, int] | None = None
    error: str = ""

    def as_json(self, job_id: str, index: int) -> dict:
        base = f"/api/jobs/{job_id}/items/{index}"
        return {
            "name": self.name,
            "input_url": f"{base}/input" if self.view else None,
            "result_url": f"{base}/result" if self.result and self.result.is_file() else None,
            "download_name": self.download_name,
            "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None,
            "result_width": self.result_size[0] if self.result_size else None,
            "result_height": self.result_size[1] if self.result_size else None,
            "error": self.error,
        }


@dataclass
class Job:
    """A unit of work: ``kind`` is ``"images"`` or ``"video"``; ``state`` goes queued -> running -> done/failed."""

    kind: str
    settings: JobSettings
    folder: Path
    items: list[JobItem] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = "queued"
    done: int = 0  # images or frames finished
    total: int = 0  # images or frames in all (0: not known yet)
    message: str = ""  # why the job failed
    notes: list[str] = field(default_factory=list)  # warnings (fp16 fallback, audio dropped ...)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)
    _first_step: float | None = field(default=None, repr=False)  # when the first image/frame was done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done or failed (True), or ``timeout`` seconds passed (False)."""
        return self._ended.wait(timeout)

    def advance(self, count: int) -> None:
        if self._first_step is None:
            self._first_step = time.time()
        self.done += count

    def rate(self) -> float:
        """Images or frames per second since the first was done (so model loading does not count),
        or 0.0 while that is not known."""
        if self._first_step is None or self.done < 2:
            return 0.0
        seconds = (self.finished or time.time()) - self._first_step
        return (self.done - 1) / seconds if seconds > 0 else 0.0

    def as_json(self, position: int = 0) -> dict:
        end = self.finished or time.time()
        elapsed = end - self.started if self.started else 0.0
        return {
            "id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
            "position": position, "message": self.message, "notes": list(self.notes),
            "elapsed": round(elapsed, 2), "rate": round(self.rate(), 3), "model": self.settings.model,
            "items": [item.as_json(self.id, i) for i, item in enumerate(self.items)],
        }


def _scale_label(outscale: float | None, scale: int) -> str:
    return f"x{outscale:g}" if outscale is not None else f"x{scale}"


class JobQueue:
    """Jobs run one at a time (one device, one model in memory) by a single worker thread.

    Args:
        load: ``settings -> translator`` (default: :func:`i2i.load` with the settings' options).
    """

    def __init__(self, load: Callable[[JobSettings], Any] | None = None) -> None:
        self._load = load or load_translator
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._translator: tuple[tuple, Any] | None = None
        self._worker = threading.Thread(target=self._work, name="i2i-serve-worker", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Job:
        """Queue ``job``; a full queue raises :class:`UsageError`."""
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state in ("queued", "running"))
            if waiting >= MAX_QUEUED_JOBS:
                raise UsageError(f"{waiting} jobs are already waiting; let them finish before adding more")
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._forget_old_jobs()
        self._pending.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0 when it runs or has finished)."""
        if job.state != "queued":
            return 0
        with self._lock:
            ahead = [self._jobs[i] for i in self._order[: self._order.index(job.id)]]
        return sum(1 for j in ahead if j.state in ("queued", "running"))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after the job it is running (queued jobs are dropped)."""
        self._pending.put(None)
        self._worker.join(timeout)

    def _forget_old_jobs(self) -> None:
        import shutil

        finished = [i for i in self._order if self._jobs[i].state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - KEPT_JOBS)]:
            shutil.rmtree(self._jobs[job_id].folder, ignore_errors=True)  # the server's own files
            self._order.remove(job_id)
            del self._jobs[job_id]

    def _work(self) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            job.state, job.started = "running", time.time()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    translator = self._translator_for(job.settings)
                    (_run_video if job.kind == "video" else _run_images)(job, translator)
                job.notes.extend(dict.fromkeys(str(w.message) for w in caught))
                failed = [item for item in job.items if item.error]
                job.state = "failed" if failed and len(failed) == len(job.items) else "done"
                if job.state == "failed":
                    job.message = failed[0].error
            except I2IError as error:
                job.state, job.message = "failed", _by_upload_names(str(error), job)
            except Exception as error:  # a bug: keep the server up, show it, and log the traceback
                import traceback

                traceback.print_exc()
                job.state, job.message = "failed", f"internal error ({type(error).__name__}: {error}); see the server's log"
            job.finished = time.time()
            job._ended.set()

    def _translator_for(self, settings: JobSettings) -> Any:
        key = settings.translator_key()
        if self._translator is None or self._translator[0] != key:
            self._translator = None  # free the previous model before loading the next
            self._translator = (key, self._load(settings))
        return self._translator[1]


def _by_upload_names(text: str, job: Job) -> str:
    """``text`` with the work folder's file names replaced by the names the files were sent with."""
    for item in job.items:
        text = text.replace(str(item.source), item.name)
    return text


def load_translator(settings: JobSettings) -> Any:
    """The translator for ``settings``, through :func:`i2i.load` (what the command line uses)."""
    from i2i.api import load

    return load(settings.model, device=settings.device, tile=settings.tile, precision=settings.precision,
                outscale=settings.outscale)


def _run_images(job: Job, translator: Any) -> None:
    """Each image in turn: read, translate, write a PNG (keeps alpha and 16 bits); a bad one is
    reported on its own and the rest go on."""
    from i2i.data.io import read_image, write_image

    job.total = len(job.items)
    label = _scale_label(job.settings.outscale, translator.scale)
    for index, item in enumerate(job.items):
        try:
            image = read_image(item.source)
            item.size = (image.shape[1], image.shape[0])
            if item.source.suffix.lower() in _BROWSER_FORMATS:
                item.view = item.source
            else:
                item.view = job.folder / f"view_{index:03d}.png"
                write_image(item.view, image)
            output = translator.translate_image(image)
            target = job.folder / f"result_{index:03d}.png"
            write_image(target, output)
            item.result, item.result_size = target, (output.shape[1], output.shape[0])
            item.download_name = f"{Path(item.name).stem}_{label}.png"
        except I2IError as error:  # named by the uploaded name, not the work folder's file
            item.error = _by_upload_names(str(error), job)
        job.advance(1)


def _run_video(job: Job, translator: Any) -> None:
    """The video through :func:`~i2i.inference.video.translate_video` (H.264 MP4 with the audio);
    its ``on_progress`` counts the frames written for the progress bar."""
    from i2i.inference.video import VideoOptions, open_video, translate_video

    item = job.items[0]
    info = open_video(item.source)
    item.size, job.total = (info.width, info.height), info.frame_count
    target = job.folder / "result.mp4"

    def on_progress(done: int, total: int) -> None:
        job.total = max(job.total, total)
        job.advance(done - job.done)

    report = translate_video([translator], item.source, target, VideoOptions(progress=False, on_progress=on_progress))
    job.total = max(job.total, report.frames)
    job.notes.extend(report.notes)
    item.result, item.result_size = target, report.size
    label = _scale_label(job.settings.outscale, translator.scale)
    item.download_name = f"{Path(item.name).stem}_{label}.mp4"
