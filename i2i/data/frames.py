"""Frames from a video as a high-resolution training folder: ``i2i data frames VIDEO OUT``.

Fine-tuning an SR model on your own footage starts from still frames. :func:`extract_frames`
decodes a range of a video and keeps

- every ``every``-th frame of the range (its first frame, then ``every`` frames apart), and/or
- with ``scene_change``, only a frame that differs enough from the last frame kept: the **mean
  absolute difference of the two frames in gray** (BT.601 luma), both shrunk to 64 pixels on the
  long side with area averaging, as a fraction of full scale (0-1). A cut between two shots
  scores about 0.1-0.5, a slow pan or noise well under 0.05; the first frame of the range is
  always kept. With ``every`` too, only every ``every``-th frame is looked at.

The frames go to ``OUT/STEM_000123.png`` (``STEM`` the video's file name without its extension,
the number the frame's index in the video), written atomically; files already there are left
alone unless ``overwrite``, so a rerun completes an interrupted one. ``start``/``end`` take frame
numbers or times (``120``, ``5s``, ``1:30``; ``end`` exclusive) as ``i2i video`` does, and
``max_frames`` stops after that many frames are kept.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from i2i.data.io import write_image
from i2i.errors import UsageError, VideoError
from i2i.inference.video import parse_position
from i2i.inference.video_io import VideoInfo, open_video

__all__ = ["FRAME_FORMATS", "FramesReport", "frame_difference", "extract_frames"]

FRAME_FORMATS = ("png", "jpg")
_THUMB_SIDE = 64  # the long side of the frames compared for scene changes
_PENDING_WRITES = 8


@dataclass
class FramesReport:
    """What :func:`extract_frames` kept and wrote."""

    output: Path
    kept: list[int] = field(default_factory=list)  # frame indices selected, in order
    written: int = 0
    existing: int = 0  # selected frames whose file was already there (left alone)
    decoded: int = 0  # frames of the range read from the video
    first: int = 0  # the range: frames first .. last - 1 (last None: to the end of the stream)
    last: int | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """A ``(h, w)`` float32 gray copy in [0, 1], ``_THUMB_SIDE`` pixels on the long side."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = gray.shape[:2]
    scale = _THUMB_SIDE / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32) / 255.0


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The scene-change measure of two same-size uint8 RGB frames: mean absolute difference of
    their gray thumbnails (64 pixels on the long side), 0 (same) to 1 (black against white)."""
    return float(np.abs(_thumbnail(a) - _thumbnail(b)).mean())


def _check_options(every: int, scene_change: float | None, max_frames: int | None, ext: str) -> str:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise UsageError(f"--every must be a whole number of frames, 1 or more, got {every!r}.")
    if scene_change is not None and not 0.0 < scene_change < 1.0:
        raise UsageError(
            f"--scene-change must be a fraction between 0 and 1 (the mean gray difference a frame needs "
            f"from the last one kept; 0.1-0.3 suits most footage), got {scene_change}."
        )
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be 1 or more, got {max_frames}.")
    ext = ext.lower().lstrip(".")
    if ext == "jpeg":
        ext = "jpg"
    if ext not in FRAME_FORMATS:
        raise UsageError(f"--ext {ext!r} is not a frame format; use one of {', '.join(FRAME_FORMATS)}.")
    return ext


def _frame_range(info: VideoInfo, start: str | int | None, end: str | int | None) -> tuple[int, int | None]:
    """``(first, last)`` frame numbers of the range; ``last`` exclusive, None for the stream's end."""
    first = parse_position(start, info.fps, option="--start") or 0
    last = parse_position(end, info.fps, option="--end")
    if first < 0 or (last is not None and last < 0):
        raise UsageError("--start and --end cannot be negative.")
    if last is not None and last <= first:
        raise UsageError(f"the range is empty: --end (frame {last}) must come after --start (frame {first}).")
    if info.exact_count:
        if first >= info.frame_count:
            raise UsageError(
                f"the range is empty: --start is frame {first}, but {info.path.name} has {info.frame_count} frames."
            )
        if last is not None:
            last = min(last, info.frame_count)
    return first, last


class _Writer:
    """Writes frames on a few threads, at most ``_PENDING_WRITES`` waiting; errors surface here."""

    def __init__(self, quality: int | None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
        self._pending: list[Future] = []
        self._quality = quality

    def put(self, path: Path, frame: np.ndarray) -> None:
        self._pending.append(self._pool.submit(write_image, path, frame, quality=self._quality))
        while len(self._pending) > _PENDING_WRITES:
            self._pending.pop(0).result()

    def close(self) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _total(info: VideoInfo, first: int, last: int | None) -> int | None:
    if last is not None:
        return last - first
    return info.frame_count - first if info.frame_count > first else None


def _candidates(
    cap: cv2.VideoCapture, info: VideoInfo, report: FramesReport, every: int, bar: tqdm
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, RGB frame)`` of every ``every``-th frame of the range; the others are only grabbed.

    Counts the frames read in ``report.decoded`` and notes a stream that ends before the frame
    count its container announces.
    """
    first, last = report.first, report.last
    index = 0
    while index < first:  # grabbing is exact on every container, unlike seeking
        if not cap.grab():
            raise UsageError(f"the range is empty: --start is frame {first}, but the video has {index} frames.")
        index += 1
    while last is None or index < last:
        if not cap.grab():
            break
        report.decoded += 1
        bar.update(1)
        if (index - first) % every == 0:
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame
        index += 1
    expected = info.frame_count if last is None else last
    if info.exact_count and index < expected:
        report.notes.append(f"the video stream ended after {index} of {expected} frames: the file may be truncated.")


def _scene_changes(frames: Iterator[tuple[int, np.ndarray]], threshold: float) -> Iterator[tuple[int, np.ndarray]]:
    """The first frame, then each frame that differs by more than ``threshold`` from the last one passed."""
    reference: np.ndarray | None = None
    for index, frame in frames:
        thumb = _thumbnail(frame)
        if reference is None or float(np.abs(thumb - reference).mean()) > threshold:
            reference = thumb
            yield index, frame


def extract_frames(
    video: str | os.PathLike,
    output: str | os.PathLike,
    *,
    every: int = 1,
    scene_change: float | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    max_frames: int | None = None,
    ext: str = "png",
    quality: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> FramesReport:
    """Write chosen frames of ``video`` to ``output/STEM_000123.EXT`` (see the module docstring).

    Args:
        every: keep every ``every``-th frame of the range (1: every frame).
        scene_change: keep only frames whose :func:`frame_difference` from the last kept frame
            is more than this (0-1); None keeps every ``every``-th frame.
        start, end: the range, frame numbers or times (``120``, ``5s``, ``1:30``); end exclusive.
        max_frames: stop after this many frames are kept (files already there count).
        ext: ``png`` (lossless, the default for training data) or ``jpg`` (``quality``, default 95).
        overwrite: replace frame files that already exist instead of leaving them.
        progress: show a progress bar (frames read, rate, ETA, frames kept).

    Raises:
        VideoError: no such video, or one that cannot be opened or decoded.
        UsageError: an empty range, a bad ``every``/``scene_change``/``max_frames``/``ext``, an
            output that is a file.
    """
    ext = _check_options(every, scene_change, max_frames, ext)
    info = open_video(video)
    first, last = _frame_range(info, start, end)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"{str(output)!r} is a file; give a folder for the frames.")
    report = FramesReport(output=output, first=first, last=last)
    began = time.perf_counter()
    cap, writer = cv2.VideoCapture(str(info.path)), _Writer(quality)
    bar = tqdm(total=_total(info, first, last), disable=not progress, unit="frame", desc="frames", dynamic_ncols=True)
    try:
        frames = _candidates(cap, info, report, every, bar)
        if scene_change is not None:
            frames = _scene_changes(frames, scene_change)
        for index, frame in frames:
            report.kept.append(index)
            path = output / f"{info.path.stem}_{index:06d}.{ext}"
            if path.exists() and not overwrite:
                report.existing += 1
            else:
                writer.put(path, frame)
                report.written += 1
            bar.set_postfix(kept=len(report.kept), refresh=False)
            if max_frames is not None and len(report.kept) >= max_frames:
                break
    finally:
        cap.release()
        bar.close()
        writer.close()
    if report.decoded == 0:
        raise VideoError(
            f"no frame could be decoded from {str(info.path)!r}"
            + (f" from frame {first} on" if first else "")
            + ": the video stream is empty, or its codec cannot be decoded by OpenCV's FFmpeg build."
        )
    report.seconds = time.perf_counter() - began
    return report
