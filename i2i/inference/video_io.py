"""Video input and output: opening and decoding videos, numbered frame files, and the writers.

**Reading.** :func:`open_video` checks a file and reports its size, rate and frame count;
:func:`decode_video` yields RGB frames of a range and raises :class:`~i2i.errors.VideoError` for a
stream that ends before the frame count its container announces. Frame folders are read in
natural order (``frame_2`` before ``frame_10``) by a few reader threads.

**Writing.** A :class:`VideoTarget` is one output video: H.264 yuv420p through ffmpeg (the binary
of the ``imageio-ffmpeg`` package, or a system one; :mod:`i2i.inference.ffmpeg`) with the source's
audio and subtitles muxed back, or OpenCV's writer (MPEG-4 Part 2, no audio) with a warning when
there is no ffmpeg. It is written under a hidden temporary name (or as H.264 parts, one per
device, joined without re-encoding) and renamed when complete, so a failed run never leaves a
half-written or silently short video. Sinks (:class:`VideoSink`, :class:`FrameFolderSink`) take
``(index, source, output)`` frames and write them to a video or to numbered image files.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import cv2
import numpy as np

from i2i.data.io import IMAGE_EXTENSIONS, is_image_file, list_images, read_image, write_image, write_problem
from i2i.errors import VideoError
from i2i.imageops import to_uint8
from i2i.inference.ffmpeg import (
    VIDEO_OUTPUT_EXTENSIONS,
    AudioSource,
    FfmpegWriter,
    concat_segments,
    find_ffmpeg,
    media_path,
    probe_streams,
)
from i2i.inference.folder import natural_key
from i2i.inference.pipeline import ordered_map
from i2i.inference.runner import usable_cores

__all__ = [
    "FRAME_NAME",
    "OPENCV_OUTPUT_EXTENSIONS",
    "VIDEO_OUTPUT_EXTENSIONS",
    "VideoInfo",
    "open_video",
    "decode_video",
    "frame_files",
    "read_frame_file",
    "read_frames",
    "side_by_side",
    "to_rgb8",
    "resolve_ffmpeg",
    "audio_source",
    "check_video_output",
    "make_folder",
    "VideoTarget",
    "VideoSink",
    "FrameFolderSink",
]

_EXACT_COUNT_CONTAINERS = (".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".f4v")  # frame count from the sample index
OPENCV_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
FRAME_NAME = "frame_{:06d}"


# ----------------------------------------------------------------------------- videos


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV reports about a video."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int  # 0 when the container does not say
    exact_count: bool  # the count comes from an index (MP4 family), not an estimate


def _fps_fraction(value: float) -> Fraction:
    """The exact rate behind a float: 29.97002997 -> 30000/1001, 25.0 -> 25."""
    for denominator in (1, 1001):
        scaled = value * denominator
        if abs(scaled - round(scaled)) < 0.02 * denominator / 1001 + 1e-6:
            return Fraction(round(scaled), denominator)
    return Fraction(value).limit_denominator(1001)


def _check_video_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"Video {str(path)!r} does not exist.")
    if path.is_dir():
        raise VideoError(f"{str(path)!r} is a folder; pass a video file, or a folder of frames with --fps.")
    if is_image_file(path):
        raise VideoError(f"{str(path)!r} is an image, not a video; use `i2i translate` for images.")
    if path.stat().st_size == 0:
        raise VideoError(f"cannot read video {str(path)!r}: the file is empty.")


def open_video(path: str | os.PathLike) -> VideoInfo:
    """Check that ``path`` is a readable video and return its size, rate and frame count."""
    path = Path(path)
    _check_video_file(path)
    cap = cv2.VideoCapture(media_path(path))  # absolute: never read as a protocol URL
    try:
        if not cap.isOpened():
            raise VideoError(
                f"cannot open {str(path)!r} as a video: it is not a video file, or it is damaged (a video cut "
                "short before its index was written cannot be opened)."
            )
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if width <= 0 or height <= 0:
        raise VideoError(f"{str(path)!r} has no video stream.")
    if not 0 < fps < 10000:
        raise VideoError(f"{str(path)!r} does not state a frame rate; convert it to MP4 first.")
    frame_count = int(count) if 0 < count < 1e9 else 0
    exact = path.suffix.lower() in _EXACT_COUNT_CONTAINERS and frame_count > 0
    return VideoInfo(path, width, height, _fps_fraction(fps), frame_count, exact)


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _check_decoded(info: VideoInfo, start: int, end: int | None, index: int) -> None:
    """Raise VideoError when decoding ``[start, end)`` stopped at ``index`` too early."""
    if index == start:
        raise VideoError(
            f"no frame could be decoded from {str(info.path)!r}"
            + (f" from frame {start} on" if start else "")
            + ": the video stream is empty, or its codec cannot be decoded by OpenCV's FFmpeg build."
        )
    expected = info.frame_count if end is None else (min(end, info.frame_count) if info.frame_count else 0)
    if expected and index < expected:
        # Containers without an index (AVI, MKV, WebM ...) only estimate their frame count.
        tolerance = 0 if info.exact_count else max(2, expected // 50)
        if expected - index > tolerance:
            raise VideoError(
                f"the video stream of {str(info.path)!r} ended after {index} of {expected} frames: the file is "
                "truncated or damaged. Nothing was written; re-encode or repair the file, or use --end "
                f"{index} to translate the frames that are there."
            )


def decode_video(
    info: VideoInfo, start: int, end: int | None, stop: threading.Event | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)`` as ``(index, RGB uint8)``; raises VideoError on a short stream."""
    cap = cv2.VideoCapture(media_path(info.path))
    index = 0
    try:
        # Skipping by grabbing is exact on every container, unlike seeking.
        while index < start:
            if not cap.grab():
                raise VideoError(
                    f"the range starts at frame {start}, but {str(info.path)!r} has only {index} frames"
                )
            index += 1
        while end is None or index < end:
            if stop is not None and stop.is_set():
                return
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield index, _bgr_to_rgb(frame)
            index += 1
    finally:
        cap.release()
    _check_decoded(info, start, end, index)


# ----------------------------------------------------------------------------- frame folders


def read_frame_file(path: Path) -> np.ndarray:
    """One frame image; VideoError naming the file when it cannot be read."""
    try:
        return read_image(path)
    except (ValueError, OSError) as exc:
        raise VideoError(f"frame {str(path)!r} cannot be read: {exc}") from None


def frame_files(folder: Path) -> list[Path]:
    """The frames of a folder in natural order; VideoError when there are none."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise VideoError(f"Frame folder {str(folder)!r} {what}.")
    files = sorted(list_images(folder, recursive=False), key=lambda p: natural_key(Path(p.name)))
    if not files:
        raise VideoError(f"no frames ({', '.join(IMAGE_EXTENSIONS)}) found in {str(folder)!r}.")
    return files


def read_frames(
    files: Sequence[Path],
    start: int,
    end: int | None,
    stop: threading.Event | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``files[start:end]`` as ``(index, image)``, read ahead by a few threads.

    With ``size`` ``(height, width)``, a frame of another size raises VideoError.
    """
    chosen = list(enumerate(files))[start:end]
    workers = max(1, min(4, usable_cores()))
    images = ordered_map(read_frame_file, [p for _, p in chosen], workers=workers, window=2 * workers)
    for (index, path), image in zip(chosen, images):
        if stop is not None and stop.is_set():
            return
        if size is not None and image.shape[:2] != size:
            raise VideoError(
                f"frame {str(path)!r} is {image.shape[1]}x{image.shape[0]}, but the first frame is "
                f"{size[1]}x{size[0]}; every frame of a video must have the same size."
            )
        yield index, image


# ----------------------------------------------------------------------------- frames for encoders


def to_rgb8(frame: np.ndarray) -> np.ndarray:
    """Any ``(H, W, C)`` uint8/uint16 image -> ``(H, W, 3)`` uint8 RGB, as video encoders want."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    frame = to_uint8(frame)
    if frame.shape[2] in (2, 4):  # alpha has no place in a video
        frame = frame[:, :, :-1]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def side_by_side(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``[source resized (bicubic) to the output's size | output]`` for a comparison video."""
    source, output = to_rgb8(source), to_rgb8(output)
    if source.shape[:2] != output.shape[:2]:
        source = cv2.resize(source, (output.shape[1], output.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.concatenate([source, output], axis=1)


# ----------------------------------------------------------------------------- output files


def _opencv_fourcc(extension: str) -> str:
    return "MJPG" if extension == ".avi" else "mp4v"


class _OpenCVWriter:
    """The fallback encoder: cv2.VideoWriter (MPEG-4 Part 2 in MP4, Motion JPEG in AVI), no audio."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, extension: str) -> None:
        self.width, self.height = width, height
        self.frames = 0
        fourcc = cv2.VideoWriter_fourcc(*_opencv_fourcc(extension))
        self._writer = cv2.VideoWriter(media_path(path), fourcc, float(fps), (width, height))
        if not self._writer.isOpened():
            raise VideoError(f"OpenCV cannot write a {extension} video to {str(path)!r}.")

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.height, self.width):
            raise VideoError(
                f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, but the video is "
                f"{self.width}x{self.height}; every frame must have the same size"
            )
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def abort(self) -> None:
        self._writer.release()


def _temporary(path: Path, tag: str = "partial") -> Path:
    return path.with_name(f".{path.stem}.{tag}{path.suffix}")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def make_folder(path: Path) -> None:
    """Create an output folder (and its parents); VideoError when a file is in the way."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise VideoError(f"cannot create the folder {str(path)!r}: a file is in the way; choose another output.") from None
    except OSError as error:
        problem = write_problem(error) or (error.strerror or str(error))
        raise VideoError(f"cannot create the folder {str(path)!r}: {problem}.") from None


def check_video_output(output: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse an output video that is an input or exists (unless ``overwrite``); create its folder."""
    if any(output.resolve() == p.resolve() for p in inputs):
        raise VideoError(f"the output {str(output)!r} is the input; choose another output file.")
    if output.exists() and not overwrite:
        raise VideoError(f"{str(output)!r} exists; pass --overwrite to replace it.")
    make_folder(output.parent)


def resolve_ffmpeg(spec: str | None) -> str | None:
    """The ffmpeg binary for ``spec``: ``"auto"`` (find one; None when there is none), a path, or None (off)."""
    if spec == "auto":
        return find_ffmpeg()
    return find_ffmpeg(spec) if spec else None


def audio_source(path: Path, ffmpeg: str | None, first: int, last: int | None, fps: Fraction) -> AudioSource | None:
    """The audio and subtitles of frames ``[first, last)`` of ``path`` (None without ffmpeg)."""
    if ffmpeg is None:
        return None
    streams = tuple(s for s in probe_streams(path, ffmpeg) if s.kind in ("audio", "subtitle"))
    duration = None if last is None else float((last - first) / fps)
    return AudioSource(path, start=float(first / fps), duration=duration, streams=streams)


class VideoTarget:
    """One output video, written by ``parts`` writers (one per device) and committed at the end.

    Use as a context manager: leaving it removes the temporary and part files, so the output
    appears only through :meth:`commit`. ``ffmpeg`` None writes with OpenCV (``ffmpeg_wanted``:
    whether ffmpeg was asked for but not found, for the warning).
    """

    def __init__(
        self, output: Path, width: int, height: int, fps: Fraction, *, parts: int = 1, ffmpeg: str | None,
        ffmpeg_wanted: bool = True, audio: AudioSource | None = None, crf: int = 18, preset: str = "medium",
    ) -> None:
        self.output, self.width, self.height, self.fps = output, width, height, fps
        self.extension = output.suffix.lower()
        self.ffmpeg, self.audio_source, self.crf, self.preset = ffmpeg, audio, crf, preset
        self.notes: list[str] = []
        self._temp = _temporary(output)
        self._segments = [self._temp] if parts == 1 else [
            _temporary(output, f"part{k}").with_suffix(".mp4") for k in range(parts)
        ]
        if ffmpeg is None:
            self._check_opencv(parts, ffmpeg_wanted)
            self.encoder, self.audio = f"opencv/{_opencv_fourcc(self.extension)}", False
            return
        if self.extension not in VIDEO_OUTPUT_EXTENSIONS:
            raise VideoError(f"cannot write {str(output)!r}: use one of {', '.join(VIDEO_OUTPUT_EXTENSIONS)}.")
        if width % 2 or height % 2:
            self.notes.append(
                f"the output is {width}x{height}; H.264 yuv420p needs even sizes, so the last row/column is repeated once"
            )
        self.encoder = "ffmpeg/libx264"
        self.audio = audio is not None and any(s.kind == "audio" for s in audio.streams)

    def _check_opencv(self, parts: int, ffmpeg_wanted: bool) -> None:
        if self.extension not in OPENCV_OUTPUT_EXTENSIONS:
            raise VideoError(f"cannot write {str(self.output)!r}: use one of {', '.join(OPENCV_OUTPUT_EXTENSIONS)}.")
        if parts > 1:
            raise VideoError("joining the parts of several devices needs ffmpeg; pip install imageio-ffmpeg, or use one device.")
        reason = (
            "no ffmpeg binary found (pip install imageio-ffmpeg, or put ffmpeg on PATH)" if ffmpeg_wanted
            else "ffmpeg is switched off"
        )
        warnings.warn(
            f"{reason}: writing with OpenCV's MPEG-4 encoder instead of H.264, and the audio is dropped.",
            RuntimeWarning,
            stacklevel=4,
        )

    def open(self, part: int) -> FfmpegWriter | _OpenCVWriter:
        """The writer of part ``part`` (0 when there is one part)."""
        if self.ffmpeg is None:
            return _OpenCVWriter(self._temp, self.width, self.height, self.fps, self.extension)
        if len(self._segments) > 1:  # a part: video only, joined (and given its audio) by commit()
            return FfmpegWriter(self.ffmpeg, self._segments[part], self.width, self.height, self.fps,
                                crf=self.crf, preset=self.preset, extension=".mp4")
        writer = FfmpegWriter(self.ffmpeg, self._temp, self.width, self.height, self.fps, crf=self.crf,
                              preset=self.preset, audio=self.audio_source, extension=self.extension)
        self.notes += writer.notes
        return writer

    def commit(self) -> None:
        """Join the parts (when there are several) and move the finished video into place."""
        if len(self._segments) > 1:
            assert self.ffmpeg is not None
            self.notes += concat_segments(
                self.ffmpeg, self._segments, self._temp, audio=self.audio_source, extension=self.extension
            )
        os.replace(self._temp, self.output)

    def __enter__(self) -> "VideoTarget":
        return self

    def __exit__(self, *exc: object) -> None:
        for path in {self._temp, *self._segments}:
            _remove(path)


# ----------------------------------------------------------------------------- sinks


class FrameSink(Protocol):
    """Where translated frames go: ``put`` each, then ``close`` (finish) or ``abort`` (give up)."""

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class VideoSink:
    """Frames into a video writer, optionally ``[source | output]`` side by side."""

    def __init__(self, writer: FfmpegWriter | _OpenCVWriter, compare: bool) -> None:
        self.writer, self.compare = writer, compare

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None:
        self.writer.write(side_by_side(source, output) if self.compare else to_rgb8(output))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class FrameFolderSink:
    """Frames into ``folder/frame_000123.ext`` (named by frame number), each written atomically."""

    def __init__(self, folder: Path, ext: str, quality: int | None, compare: bool) -> None:
        self.folder, self.ext, self.quality, self.compare = folder, ext, quality, compare

    def path(self, index: int) -> Path:
        return self.folder / (FRAME_NAME.format(index) + self.ext)

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None:
        path = self.path(index)
        try:
            write_image(path, side_by_side(source, output) if self.compare else output, quality=self.quality)
        except OSError as error:  # a full or read-only disk stops the run: one line, no partial frame
            problem = write_problem(error) or (error.strerror or str(error))
            raise VideoError(
                f"cannot write frame {str(path)!r}: {problem}. The frames already written are kept; running "
                "the same command again carries on from there."
            ) from None

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass
