"""The frame pipeline of a video run: decode, batched inference and encode overlapping.

:func:`run_frames` runs one stretch: a decode thread feeds batched inference in the calling
thread and an encode thread writes the results; bounded queues join them, so memory stays flat for
any video length. :func:`translate_parts` runs one stretch per translator (device) side by side,
:func:`write_segments` does the same with whole segments of a resumable H.264 output. The
progress bar (:class:`Progress`) shows frames/s and the ETA.

A whole output is :func:`write_segmented` (this process's share of the segments, finished ones
kept, then the lossless join on rank 0; SIGTERM is handled as Ctrl-C meanwhile, so the unfinished
segment is removed and the message says how to continue) or, without ffmpeg,
:func:`write_with_opencv`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from i2i.errors import VideoError
from i2i.inference.ffmpeg import VIDEO_OUTPUT_EXTENSIONS, Stream
from i2i.inference.pipeline import Consumer, PartStopped, Prefetcher, run_parts
from i2i.shard import current_shard
from i2i.inference.translator import Translator
from i2i.inference.video_io import FrameSink, OpenCVTarget, VideoSink
from i2i.inference.video_segments import (
    EncodeSettings,
    PartsFolder,
    Segment,
    SegmentSink,
    contiguous_runs,
    interrupted_error,
    join_segments,
    plan_segments,
)
from i2i.inference.video_source import Timeline

__all__ = [
    "FrameSource", "Progress", "ProgressCallback", "VideoReport", "run_frames", "translate_parts", "write_segments",
    "write_segmented", "write_with_opencv", "output_size",
]

FrameSource = Callable[[int, "int | None", threading.Event], Iterator[tuple[int, np.ndarray]]]


@dataclass
class VideoReport:
    """What a video run wrote."""

    output: Path
    frames: int  # frames translated and written
    skipped: int = 0  # frames already there: in an output frame folder, or in kept segments of a video
    fps: Fraction | None = None
    size: tuple[int, int] | None = None  # (width, height) of the output frames
    encoder: str = ""  # "ffmpeg/libx264", "opencv/mp4v", "frames"
    audio: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def output_size(translator: Translator, width: int, height: int, compare: bool) -> tuple[int, int]:
    """``(width, height)`` of the video ``translator`` makes from ``width`` x ``height`` frames."""
    out_height, out_width = translator.output_size(height, width)
    return out_width * (2 if compare else 1), out_height


ProgressCallback = Callable[[int, int], None]  # (frames done, total or 0 while unknown)


class Progress:
    """The progress bar (frames/s, ETA) and ``on_progress(done, total)`` as frames are written;
    ``total`` is 0 while unknown, ``initial`` counts frames already done (kept segments)."""

    def __init__(
        self, total: int | None, enabled: bool, desc: str, on_progress: ProgressCallback | None = None, initial: int = 0
    ) -> None:
        self._bar = tqdm(total=total, initial=initial, disable=not enabled, unit="frame", desc=desc, dynamic_ncols=True)
        self._lock = threading.Lock()
        self._done, self._total, self._on_progress = initial, total or 0, on_progress

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)
            self._done += n
            if self._on_progress is not None:  # under the lock: reports arrive in order
                self._on_progress(self._done, max(self._total, self._done) if self._total else 0)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def run_frames(
    translator: Translator,
    frames: Iterator[tuple[int, np.ndarray]],
    sink: FrameSink,
    progress: Progress,
    skip: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """Decode thread -> batched inference here -> encode thread. Returns (written, skipped)."""
    depth = max(2, 2 * translator.batch_size)
    counts = [0, 0]

    def encode(item: tuple[int, np.ndarray, np.ndarray]) -> None:
        sink.put(*item)
        counts[0] += 1
        progress.update()

    with Prefetcher(frames, depth, name="i2i-decode") as source:
        encoder: Consumer = Consumer(encode, depth, name="i2i-encode")
        try:
            pending: list[tuple[int, np.ndarray]] = []

            def infer() -> None:
                outputs = translator.translate_images([frame for _, frame in pending])
                for (index, frame), output in zip(pending, outputs):
                    encoder.put((index, frame, output))
                pending.clear()

            for index, frame in source:
                if skip is not None and skip(index):
                    counts[1] += 1
                    progress.update()
                    continue
                if pending and (frame.shape != pending[0][1].shape or len(pending) >= translator.batch_size):
                    infer()
                pending.append((index, frame))
            if pending:
                infer()
        except BaseException:
            encoder.abort()
            raise
        encoder.close()
    return counts[0], counts[1]


def translate_parts(
    translators: Sequence[Translator],
    ranges: Sequence[tuple[int, int | None]],
    make_frames: FrameSource,
    make_sink: Callable[[int], FrameSink],
    progress: Progress,
    skip: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """Each range on its own translator, side by side; returns (written, skipped) in total."""

    def work(k: int, stop: threading.Event) -> tuple[int, int]:
        sink: FrameSink | None = None
        try:
            sink = make_sink(k)
            counts = run_frames(translators[k], make_frames(*ranges[k], stop), sink, progress, skip)
            if stop.is_set():
                raise PartStopped("stopped because another part failed")
            sink.close()
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
        return counts

    totals = run_parts(len(ranges), work)
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


def write_segments(
    translators: Sequence[Translator],
    segments: Sequence[Segment],
    make_frames: FrameSource,
    make_sink: Callable[[Sequence[Segment]], FrameSink],
    progress: Progress,
) -> int:
    """Translate ``segments`` (in order), split into one contiguous share per translator; returns
    the frames written. Each share decodes its runs of adjacent segments once each."""
    count = min(len(translators), len(segments))
    bounds = [len(segments) * k // count for k in range(count + 1)] if count else [0]
    shares = [segments[bounds[k]:bounds[k + 1]] for k in range(count)]

    def work(k: int, stop: threading.Event) -> int:
        sink = make_sink(shares[k])
        written = 0
        try:
            for start, end in contiguous_runs(shares[k]):
                written += run_frames(translators[k], make_frames(start, end, stop), sink, progress)[0]
                if stop.is_set():
                    raise PartStopped("stopped because another part failed")
            sink.close()
        except BaseException:
            sink.abort()
            raise
        return written

    return sum(run_parts(count, work)) if count else 0


# ----------------------------------------------------------------------------- whole outputs


def write_with_opencv(
    translators: Sequence[Translator], first: int, last: int | None, make_frames: FrameSource, output: Path,
    fps: Fraction, *, compare: bool, ffmpeg_wanted: bool, progress: Progress,
) -> VideoReport:
    """The fallback without ffmpeg: one OpenCV writer, no audio, no segments."""
    if len(translators) > 1 or current_shard().world_size > 1:
        raise VideoError("joining the parts of several devices or processes needs ffmpeg; pip install imageio-ffmpeg.")
    probe = make_frames(first, first + 1, threading.Event())
    try:
        frame = next(iter(probe))[1]
    finally:
        getattr(probe, "close", lambda: None)()  # release the decoder now
    width, height = output_size(translators[0], frame.shape[1], frame.shape[0], compare)
    with OpenCVTarget(output, width, height, fps, ffmpeg_wanted=ffmpeg_wanted) as target:
        sink = VideoSink(target.open(), compare)
        try:
            frames = run_frames(translators[0], make_frames(first, last, threading.Event()), sink, progress)[0]
            sink.close()
        except BaseException:
            sink.abort()
            raise
        target.commit()
    return VideoReport(output=output, frames=frames, fps=fps, size=(width, height), encoder=target.encoder)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does) while a video is written, so the unfinished
    segment is removed and the message says how to continue; only the main thread can do this."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _model_digest(translator: Translator) -> str:
    """What the model computes, for telling one run's segments from another's: its description,
    weights and output scale."""
    digest = hashlib.sha256(translator.info.to_json().encode("utf-8"))
    digest.update(repr(translator.outscale).encode("utf-8"))
    module = translator.runner.module
    graph = getattr(module, "data", None)
    if isinstance(graph, bytes):  # an ONNX Runtime generator: the graph holds the weights
        digest.update(graph)
        return digest.hexdigest()[:16]
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _plan(source: Path, timeline: Timeline, settings: EncodeSettings, segment_frames: int, translator: Translator) -> dict:
    """What the segments of an output depend on; a parts folder of another plan is not reused."""
    stat = source.stat()
    return json.loads(json.dumps({
        "source": str(source.resolve()), "source_bytes": stat.st_size, "source_modified_ns": stat.st_mtime_ns,
        "frames": [timeline.first, timeline.last], "segment_frames": segment_frames,
        "size": [settings.width, settings.height], "crf": settings.crf, "preset": settings.preset,
        "compare": settings.compare, "pixel_format": settings.colour.pixel_format, "model": _model_digest(translator),
    }))


def write_segmented(
    translators: Sequence[Translator], source: Path, timeline: Timeline, make_frames: FrameSource, output: Path,
    settings: EncodeSettings, *, segment_seconds: float, progress: bool, streams: Sequence[Stream] = (),
    to_the_end: bool = True, on_progress: ProgressCallback | None = None,
) -> VideoReport:
    """Write ``output`` as segments (this process's share; the ones already finished are kept),
    then, on rank 0 once every rank is done, join them with the audio of ``source``."""
    if output.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
        raise VideoError(f"cannot write {str(output)!r}: use one of {', '.join(VIDEO_OUTPUT_EXTENSIONS)}.")
    shard = current_shard()
    segments = plan_segments(timeline, segment_seconds)
    mine = [segments[i] for i in shard.range(len(segments))]
    parts = PartsFolder(output)
    parts.open(_plan(source, timeline, settings, segments[0].frames, translators[0]), mine)
    pending = [s for s in mine if not parts.done(s)]
    report = VideoReport(output=output, frames=0, fps=timeline.fps, size=(settings.width, settings.height),
                         encoder="ffmpeg/libx264", audio=any(s.kind == "audio" for s in streams))
    report.skipped = sum(s.frames for s in mine) - sum(s.frames for s in pending)
    if report.skipped:
        report.notes.append(f"resumed: {report.skipped} frames of finished segments in {str(parts.folder)!r} were kept")
    if settings.width % 2 or settings.height % 2:
        report.notes.append(f"the output is {settings.width}x{settings.height}; H.264 yuv420p needs even sizes, "
                            "so the last row/column is repeated once")
    with _terminate_as_interrupt():
        try:
            with Progress(sum(s.frames for s in mine), progress, "video", on_progress, report.skipped) as bar:
                report.frames = write_segments(
                    translators, pending, make_frames, lambda share: SegmentSink(parts, share, timeline, settings), bar
                )
            shard.barrier()
            if shard.is_main:
                report.notes += join_segments(
                    parts, segments, timeline, ffmpeg=settings.ffmpeg, source=source if streams else None,
                    streams=streams, to_the_end=to_the_end,
                )
                report.frames = timeline.count
        except KeyboardInterrupt:
            unfinished = any(not parts.done(s) for s in mine)  # this process's share, else the join
            raise interrupted_error(parts, mine if unfinished else segments) from None
    if not shard.is_main:
        report.notes.append(f"process {shard.rank} of {shard.world_size} wrote its segments; rank 0 joins them")
    return report
