"""Video input and output: opening and decoding videos, numbered frame files, and the writers.

**Reading.** :func:`open_video` checks a file and reports its size, rate and frame count;
:func:`decode_video` yields RGB frames of a range and raises :class:`~i2i.errors.VideoError` for a
stream that ends before the frame count its container announces. Frame folders are read in
natural order (``frame_2`` before ``frame_10``) by a few reader threads.

**Writing.** H.264 output is written in segments by :mod:`i2i.inference.video_segments`; here
is the fallback without ffmpeg, :class:`OpenCVTarget` (MPEG-4 Part 2, no audio, with a warning),
written under a hidden temporary name and renamed when complete. Sinks (:class:`VideoSink`,
:class:`FrameFolderSink`) take ``(index, source, output)`` frames and write them to a video or to
numbered image files; :func:`video_frame` makes the frame a video holds (8 or 16 bits, optionally
``[source | output]``).
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
from i2i.inference.ffmpeg import VIDEO_OUTPUT_EXTENSIONS, find_ffmpeg, media_path
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
    "check_video_output",
    "make_folder",
    "OpenCVTarget",
    "video_frame",
    "to_video_rgb",
    "check_decoded",
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


def check_decoded(info: VideoInfo, start: int, end: int | None, index: int) -> None:
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
    check_decoded(info, start, end, index)


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
    return to_video_rgb(frame, deep=False)


def to_video_rgb(frame: np.ndarray, deep: bool) -> np.ndarray:
    """Any ``(H, W, C)`` uint8/uint16 image -> ``(H, W, 3)`` RGB, uint16 when ``deep`` else uint8."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if not deep:
        frame = to_uint8(frame)
    elif frame.dtype == np.uint8:
        frame = frame.astype(np.uint16) * 257
    if frame.shape[2] in (2, 4):  # alpha has no place in a video
        frame = frame[:, :, :-1]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def side_by_side(source: np.ndarray, output: np.ndarray, deep: bool = False) -> np.ndarray:
    """``[source resized (bicubic) to the output's size | output]`` for a comparison video."""
    source, output = to_video_rgb(source, deep), to_video_rgb(output, deep)
    if source.shape[:2] != output.shape[:2]:
        source = cv2.resize(source, (output.shape[1], output.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.concatenate([source, output], axis=1)


def video_frame(source: np.ndarray, output: np.ndarray, compare: bool, deep: bool = False) -> np.ndarray:
    """What goes into the video for one translated frame: the output, or both side by side."""
    return side_by_side(source, output, deep) if compare else to_video_rgb(output, deep)


# ----------------------------------------------------------------------------- output files


def _opencv_fourcc(extension: str) -> str:
    return "MJPG" if extension == ".avi" else "mp4v"


class _OpenCVWriter:
    """The fallback encoder: cv2.VideoWriter (MPEG-4 Part 2 in MP4, Motion JPEG in AVI), no audio."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, extension: str) -> None:
        self.width, self.height = width, height
        self.frames = 0
        fourcc = cv2.VideoWriter.fourcc(*_opencv_fourcc(extension))
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


class OpenCVTarget:
    """One output video written by OpenCV's writer (MPEG-4 Part 2 or Motion JPEG, no audio): the
    fallback when there is no ffmpeg, with a warning saying so (``ffmpeg_wanted``: ffmpeg was asked
    for but not found).

    Use as a context manager: the video is written under a hidden temporary name, and leaving the
    block removes it, so the output appears only through :meth:`commit`.
    """

    def __init__(self, output: Path, width: int, height: int, fps: Fraction, *, ffmpeg_wanted: bool = True) -> None:
        self.output, self.width, self.height, self.fps = output, width, height, fps
        self.extension = output.suffix.lower()
        self.notes: list[str] = []
        self._temp = _temporary(output)
        if self.extension not in OPENCV_OUTPUT_EXTENSIONS:
            raise VideoError(f"cannot write {str(output)!r}: use one of {', '.join(OPENCV_OUTPUT_EXTENSIONS)}.")
        reason = (
            "no ffmpeg binary found (pip install imageio-ffmpeg, or put ffmpeg on PATH)" if ffmpeg_wanted
            else "ffmpeg is switched off"
        )
        warnings.warn(
            f"{reason}: writing with OpenCV's MPEG-4 encoder instead of H.264, and the audio is dropped.",
            RuntimeWarning,
            stacklevel=3,
        )
        self.encoder, self.audio = f"opencv/{_opencv_fourcc(self.extension)}", False

    def open(self) -> _OpenCVWriter:
        return _OpenCVWriter(self._temp, self.width, self.height, self.fps, self.extension)

    def commit(self) -> None:
        """Move the finished video into place."""
        os.replace(self._temp, self.output)

    def __enter__(self) -> "OpenCVTarget":
        return self

    def __exit__(self, *exc: object) -> None:
        _remove(self._temp)


# ----------------------------------------------------------------------------- sinks


class FrameSink(Protocol):
    """Where translated frames go: ``put`` each, then ``close`` (finish) or ``abort`` (give up)."""

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class VideoSink:
    """Frames into a video writer, optionally ``[source | output]`` side by side."""

    def __init__(self, writer: _OpenCVWriter, compare: bool) -> None:
        self.writer, self.compare = writer, compare

    def put(self, index: int, source: np.ndarray, output: np.ndarray) -> None:
        self.writer.write(video_frame(source, output, self.compare))

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
