"""What a source video's frames are beyond their pixels: when each is shown, and how deep and in
which colours they are.

**Timestamps.** A :class:`Timeline` knows the time of every frame of a range. A constant-rate
stream (every packet one frame period after the one before, read from the packets without
decoding by :func:`~i2i.inference.ffmpeg.packet_times`) is ``index / fps``, frame-exact; any other
stream is scanned once with OpenCV (``grab`` and ``CAP_PROP_POS_MSEC``, the time the decoder gives
each frame), so a variable-frame-rate source keeps every frame where it was.

**Depth and colour.** :func:`source_colour` reads the stream's matrix, range, primaries, transfer
and bit depth. Frames of an 8-bit source are decoded by OpenCV (which converts with the stream's
BT.601 or BT.709 matrix); those of a deeper source, or of another matrix (BT.2020), by ffmpeg to
16-bit RGB (:func:`decode_deep`), so a 10-bit video reaches the model with all of its levels.
"""
from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from i2i.errors import VideoError
from i2i.inference.ffmpeg import ColourTags, Stream, colour_tags, media_path, packet_times
from i2i.inference.video_io import VideoInfo, check_decoded, decode_video

__all__ = ["Timeline", "scan_timeline", "source_colour", "decode_deep", "decode_source"]

_OPENCV_MATRICES = ("smpte170m", "bt470bg", "bt709")  # matrices OpenCV's decoder converts correctly
_SAME_TIME = 0.001  # seconds: a frame this close to its place at the nominal rate is on it (MKV rounds to 1 ms)


@dataclass(frozen=True)
class Timeline:
    """When frames ``first ... first + count - 1`` are shown, in seconds from the stream's start.

    ``times`` is None for a constant frame rate (frame ``i`` at ``i / fps``); ``end`` is when the
    last frame of the range stops being shown.
    """

    first: int
    count: int
    fps: Fraction
    end: float
    times: tuple[float, ...] | None = None

    @property
    def last(self) -> int:
        """The frame after the range."""
        return self.first + self.count

    @property
    def constant(self) -> bool:
        return self.times is None

    def time(self, index: int) -> float:
        """When frame ``index`` (``first <= index <= last``; ``last`` gives ``end``) is shown."""
        if index == self.last:
            return self.end
        if self.times is None:
            return float(Fraction(index) / self.fps)
        return self.times[index - self.first]


    def span(self, first: int, last: int) -> "Timeline":
        """Frames ``[first, last)`` of this timeline."""
        if self.times is None:
            return constant_timeline(first, last, self.fps)
        return Timeline(first, last - first, self.fps, self.time(last), self.times[first - self.first : last - self.first])


def constant_timeline(first: int, last: int, fps: Fraction) -> Timeline:
    """Frames ``[first, last)`` at ``fps``."""
    return Timeline(first, last - first, fps, float(Fraction(last) / fps))


def _constant_count(info: VideoInfo, ffmpeg: str | None) -> int | None:
    """The frame count when the packets say the stream has a constant rate equal to ``info.fps``."""
    if ffmpeg is None:
        return None
    found = packet_times(info.path, ffmpeg)
    if found is None or len(found[1]) < 2:
        return None
    base, times = found
    steps = {b - a for a, b in zip(times, times[1:])}
    if len(steps) != 1 or steps.pop() * base != 1 / info.fps:
        return None
    if info.exact_count and len(times) != info.frame_count:
        return None  # packets that are not shown frames: let the decoder say
    return len(times)


def _scan(info: VideoInfo, first: int, last: int | None, progress: bool) -> tuple[list[float], float | None]:
    """OpenCV's time of each frame of ``[first, last)`` and of frame ``last`` (None at the end)."""
    cap = cv2.VideoCapture(media_path(info.path))
    times: list[float] = []
    index, after = 0, None
    total = last if last is not None else (info.frame_count or None)
    bar = tqdm(total=total, disable=not progress, unit="frame", desc="frame times", dynamic_ncols=True, leave=False)
    try:
        while cap.grab():
            bar.update()
            if last is not None and index == last:
                after = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                break
            if index >= first:
                times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
            index += 1
    finally:
        cap.release()
        bar.close()
    if 0 < index <= first:
        raise VideoError(f"the range starts at frame {first}, but {str(info.path)!r} has only {index} frames")
    check_decoded(info, first, last, index)
    return times, after


def scan_timeline(info: VideoInfo, ffmpeg: str | None, first: int, last: int | None, *, progress: bool = False) -> Timeline:
    """The times of frames ``[first, last)`` (``last`` None: to the end of the stream); a
    variable-rate stream is decoded once for them (``progress``: with a progress bar).

    Raises VideoError when the range starts after the last frame or the stream is cut short.
    """
    count = _constant_count(info, ffmpeg)
    if count is not None:
        if first >= count:
            raise VideoError(f"the range starts at frame {first}, but {str(info.path)!r} has only {count} frames")
        return constant_timeline(first, count if last is None else min(last, count), info.fps)
    times, after = _scan(info, first, last, progress)
    period = float(1 / info.fps)
    if all(abs(t - (first + k) * period) < _SAME_TIME for k, t in enumerate(times)):
        return constant_timeline(first, first + len(times), info.fps)
    end = after if after is not None else times[-1] + period
    return Timeline(first, len(times), info.fps, end, tuple(times))


def source_colour(streams: Sequence[Stream]) -> ColourTags:
    """The colour tags and bit depth of the video stream among ``streams`` (as
    :func:`~i2i.inference.ffmpeg.probe_streams` lists them); BT.601 8-bit when unknown."""
    video = [s for s in streams if s.kind == "video" and not s.attached_picture]
    return colour_tags(video[0]) if video else ColourTags()


def decode_deep(
    info: VideoInfo, ffmpeg: str, colour: ColourTags, start: int, end: int | None, stop: threading.Event | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)`` as ``(index, RGB uint16)``, decoded by ffmpeg with the stream's matrix."""
    cmd = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", media_path(info.path), "-map", "0:v:0",
        "-vf", f"select=gte(n\\,{start}),{colour.decode_filters()}", "-fps_mode", "passthrough",
        "-f", "rawvideo", "pipe:1",
    ]
    size = info.width * info.height * 3 * 2
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    index = start
    try:
        while (end is None or index < end) and not (stop is not None and stop.is_set()):
            data = process.stdout.read(size)  # type: ignore[union-attr]
            if len(data) < size:
                break
            yield index, np.frombuffer(data, "<u2").reshape(info.height, info.width, 3).astype(np.uint16)
            index += 1
    finally:
        process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    if not (stop is not None and stop.is_set()):
        check_decoded(info, start, end, index)


def decode_source(
    info: VideoInfo, ffmpeg: str | None, colour: ColourTags, start: int, end: int | None,
    stop: threading.Event | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)``: 8-bit from OpenCV for 8-bit BT.601/BT.709 sources, else 16-bit
    through ffmpeg (OpenCV drops a deep source to 8 bits and misreads other matrices, BT.2020's)."""
    if ffmpeg is not None and (colour.bit_depth > 8 or colour.matrix not in _OPENCV_MATRICES):
        return decode_deep(info, ffmpeg, colour, start, end, stop)
    return decode_video(info, start, end, stop)
