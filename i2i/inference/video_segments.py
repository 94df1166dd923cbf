"""Resumable H.264 output: a video is written as closed segments, then joined without re-encoding.

**The parts folder.** ``OUTPUT.parts/`` beside the output holds ``segment_000000.mp4``,
``segment_000001.mp4``, ... (each a finished H.264 file of about ``segment_seconds`` of frames, at
most :data:`MAX_SEGMENT_FRAMES`) and ``plan.json``, which says what run they belong to (source,
range, size, encoder settings, model). The segment being written is a hidden
``.segment_000003.partial.mp4`` renamed when it is complete, so a segment file is always whole.

**Resuming.** A rerun of the same command keeps the finished segments and translates from the
first missing one; a parts folder of a different run is refused with a message naming it. An
interrupted run (an error, Ctrl-C, SIGTERM) removes the unfinished segment and says how to
continue. When every segment is there, they are joined by ffmpeg's concat demuxer (stream copy:
no second encode) with the source's audio and subtitles muxed in, the result is renamed into
place and the parts folder is removed.

**Time.** Each segment's frames carry their source frames' times (relative to the segment's
first frame), and the join places each segment at its first frame's time, so a variable frame
rate survives and the audio stays in sync; constant-rate sources stay frame-exact.

**Several processes.** Segments are whole units of work: a process started by torchrun takes its
contiguous block of segments (:meth:`~i2i.shard.Shard.range`), devices within it split
that block, and once every rank is done rank 0 joins.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from i2i.errors import VideoError
from i2i.files import atomic_write_bytes
from i2i.inference.ffmpeg import AudioSource, ColourTags, FfmpegWriter, Stream, concat_segments, encodes_10_bit
from i2i.inference.video_io import make_folder, video_frame
from i2i.inference.video_source import Timeline

__all__ = [
    "MAX_SEGMENT_FRAMES", "SEGMENT_SECONDS", "Segment", "plan_segments", "PartsFolder", "EncodeSettings",
    "SegmentSink", "join_segments", "interrupted_error", "encoder_colour",
]

SEGMENT_SECONDS = 10.0  # a rerun after an interruption repeats at most this much work per process
MAX_SEGMENT_FRAMES = 1024  # keeps the per-frame timestamp expression of a segment small


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of the source, written to one segment file."""

    number: int
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def plan_segments(timeline: Timeline, seconds: float) -> list[Segment]:
    """The range cut into segments of ``seconds`` of frames at the nominal rate (the last may be shorter)."""
    size = max(1, min(MAX_SEGMENT_FRAMES, round(seconds * float(timeline.fps))))
    starts = range(timeline.first, timeline.last, size)
    return [Segment(k, a, min(a + size, timeline.last)) for k, a in enumerate(starts)]


def contiguous_runs(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    """Frame ranges ``(start, end)`` covering ``segments``, adjacent segments merged (one decode each)."""
    runs: list[list[int]] = []
    for segment in segments:
        if runs and runs[-1][1] == segment.start:
            runs[-1][1] = segment.end
        else:
            runs.append([segment.start, segment.end])
    return [(a, b) for a, b in runs]


class PartsFolder:
    """``OUTPUT.parts/``: the finished segments of one output, and the plan they belong to."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.folder = output.with_name(output.name + ".parts")

    def path(self, segment: Segment) -> Path:
        return self.folder / f"segment_{segment.number:06d}.mp4"

    def partial(self, segment: Segment) -> Path:
        return self.folder / f".segment_{segment.number:06d}.partial.mp4"

    def done(self, segment: Segment) -> bool:
        return self.path(segment).is_file()

    def open(self, plan: dict[str, Any], mine: Sequence[Segment]) -> None:
        """Create the folder or check that it holds this plan; remove partial files of ``mine``
        (left by a process that was killed before it could)."""
        make_folder(self.folder)
        plan_file = self.folder / "plan.json"
        if plan_file.is_file():
            try:
                found = json.loads(plan_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found = None
            if found != plan:
                differs = sorted(k for k in plan if not isinstance(found, dict) or found.get(k) != plan[k])
                raise VideoError(
                    f"{str(self.folder)!r} holds the segments of another run (different {', '.join(differs) or 'plan'}); "
                    "run the earlier command again to finish it, or delete that folder to start over."
                )
        else:
            atomic_write_bytes(plan_file, json.dumps(plan, indent=1, sort_keys=True).encode("utf-8"))
        for segment in mine:
            self.partial(segment).unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class EncodeSettings:
    """How every segment is encoded."""

    ffmpeg: str
    width: int
    height: int
    crf: int
    preset: str
    colour: ColourTags
    compare: bool

    @property
    def deep(self) -> bool:
        return self.colour.bit_depth > 8


def encoder_colour(colour: ColourTags, ffmpeg: str, what: str) -> ColourTags:
    """``colour`` as the encoder can write it: 10-bit for a deep source (``what``, e.g. "the 16-bit
    frames are"), or 8-bit with one warning where this ffmpeg's libx264 has no 10-bit."""
    if colour.bit_depth <= 8 or encodes_10_bit(ffmpeg):
        return colour
    warnings.warn(f"{what} written as 8-bit H.264: this ffmpeg's libx264 cannot encode 10-bit (yuv420p10le); "
                  "give one that can with --ffmpeg PATH", RuntimeWarning, stacklevel=2)
    return dataclasses.replace(colour, bit_depth=8)


class SegmentSink:
    """Translated frames into segment files: each segment is written under its hidden partial
    name and renamed when its last frame is in. ``abort`` removes the unfinished one."""

    def __init__(self, parts: PartsFolder, segments: Sequence[Segment], timeline: Timeline, settings: EncodeSettings) -> None:
        self.parts, self.timeline, self.settings = parts, timeline, settings
        self._starts = {s.start: s for s in segments}
        self._segment: Segment | None = None
        self._writer: FfmpegWriter | None = None

    def _open(self, segment: Segment) -> FfmpegWriter:
        origin = self.timeline.time(segment.start)
        times = None if self.timeline.constant else [
            self.timeline.time(i) - origin for i in range(segment.start, segment.end)
        ]
        s = self.settings
        return FfmpegWriter(
            s.ffmpeg, self.parts.partial(segment), s.width, s.height, self.timeline.fps, crf=s.crf, preset=s.preset,
            extension=".mp4", colour=s.colour, deep=s.deep, timestamps=times,
        )

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None:
        if self._writer is None:
            self._segment = self._starts[index]  # frames come in order, from a segment's start
            self._writer = self._open(self._segment)
        assert self._segment is not None
        self._writer.write(video_frame(source, output, self.settings.compare, self.settings.deep))
        if index == self._segment.end - 1:
            self._writer.close()
            os.replace(self.parts.partial(self._segment), self.parts.path(self._segment))
            self._writer = self._segment = None

    def close(self) -> None:
        if self._writer is not None:  # a decoder that ended inside a segment is a bug, not a short video
            self.abort()
            raise VideoError("the video's frames ended inside a segment; nothing of it was kept")

    def abort(self) -> None:
        if self._writer is not None and self._segment is not None:
            self._writer.abort()
            self.parts.partial(self._segment).unlink(missing_ok=True)
        self._writer = self._segment = None


def _durations(segments: Sequence[Segment], timeline: Timeline) -> list[float]:
    """How long each segment is shown, from boundaries rounded to microseconds (no drift)."""
    origin = timeline.time(timeline.first)
    bounds = [round((timeline.time(s.start) - origin) * 1e6) for s in segments]
    bounds.append(round((timeline.end - origin) * 1e6))
    return [(b - a) / 1e6 for a, b in zip(bounds, bounds[1:])]


def join_segments(
    parts: PartsFolder, segments: Sequence[Segment], timeline: Timeline, *, ffmpeg: str,
    source: Path | None, streams: Sequence[Stream], to_the_end: bool,
) -> list[str]:
    """Join every segment into the output (stream copy), mux the source's audio and subtitles of the
    same span, move it into place and remove the parts folder. Returns notes about the audio."""
    missing = [s.number for s in segments if not parts.done(s)]
    if missing:
        raise VideoError(f"segments {missing[:5]} of {str(parts.folder)!r} are missing; run the same command again.")
    audio = None
    if source is not None and streams:
        start = timeline.time(timeline.first)
        audio = AudioSource(source, start=start, duration=None if to_the_end else timeline.end - start, streams=tuple(streams))
    output = parts.output
    temporary = output.with_name(f".{output.stem}.partial{output.suffix}")
    try:
        notes = concat_segments(
            ffmpeg, [parts.path(s) for s in segments], temporary, audio=audio, extension=output.suffix.lower(),
            durations=_durations(segments, timeline),
        )
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    parts.remove()
    return notes


def interrupted_error(parts: PartsFolder, segments: Sequence[Segment]) -> VideoError:
    """The message for a run stopped by Ctrl-C or SIGTERM: where it stopped and how to go on."""
    if not parts.folder.is_dir():  # stopped after the join: the output is complete
        return VideoError(f"Interrupted after {str(parts.output)!r} was finished; nothing is left to do.")
    kept = [s for s in segments if parts.done(s)]
    missing = [s for s in segments if not parts.done(s)]
    where = f"at frame {missing[0].start}" if missing else "while joining the segments"
    return VideoError(
        f"Interrupted {where}; {len(kept)} of {len(segments)} segments are finished in "
        f"{str(parts.folder)!r}. Run the same command again to continue."
    )
