"""Translate videos and folders of numbered frames.

**Pipeline.** A decode thread (``cv2.VideoCapture``, or reader threads for a frame folder) feeds
batched inference in the main thread, and an encode thread writes the results; bounded queues join
them, so memory stays flat for any video length. The progress bar shows frames/s and the ETA.

**Output.** A video output has the input's frame count and frame rate: every decoded frame is
translated and written exactly once, in order. Frames are piped as raw RGB to ffmpeg (the binary of
the ``imageio-ffmpeg`` package, or a system one) and encoded as H.264 yuv420p MP4 that plays in
browsers (``crf``/``preset``); the source's audio and subtitles are muxed back without re-encoding
(MP4 cannot hold every codec: such audio is re-encoded to AAC with a warning, ``.mkv`` keeps
anything). Without ffmpeg, OpenCV's writer is used (MPEG-4 Part 2), with a warning that the audio
is dropped. The file is written under a hidden temporary name and renamed when complete, so a
failed run never leaves a half-written or silently short video.

**Ranges.** ``start``/``end`` are frame numbers (``120``) or times (``5s``, ``2.5s``, ``1:30``,
``0:01:02.5``); ``end`` is exclusive. The audio is cut to the same span.

**Frame folders.** A folder of numbered frames (``frame_1.png``, ``frame_2.png``, ... ordered by
the numbers, not as text) goes to a folder (resumable: frames already there are skipped) or to a
video at ``fps``. A video can also go to a frame folder (``frame_000000.png`` ..., named by frame
number, resumable).

**Bad input.** A missing file, a file that is not a video, a video with no decodable frame and a
stream that ends before the frame count its container announces raise :class:`VideoError` with the
reason; nothing is written then.

**Several devices.** Given several translators (``--devices 0,1``), the frame range is split into
contiguous parts by frame index, one per device; each part is decoded, translated and encoded by
its own threads, and the H.264 parts are joined without re-encoding (ffmpeg's concat demuxer)
before the audio is muxed in. This runs in one process on one machine.
"""
from __future__ import annotations

import os
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from i2i.data.io import IMAGE_EXTENSIONS, is_image_file, list_images, read_image, write_image
from i2i.inference.ffmpeg import (
    VIDEO_OUTPUT_EXTENSIONS,
    AudioSource,
    FfmpegError,
    FfmpegWriter,
    concat_segments,
    find_ffmpeg,
    probe_streams,
)
from i2i.inference.folder import FolderReport, natural_key, plan_outputs, translate_pairs
from i2i.inference.pipeline import Consumer, Prefetcher, ordered_map
from i2i.inference.translator import Translator, usable_cores
from i2i.errors import VideoError
from i2i.imageops import to_uint8

__all__ = [
    "VideoError",
    "VideoInfo",
    "VideoReport",
    "open_video",
    "parse_position",
    "translate_video",
    "translate_frames",
    "side_by_side",
]

_EXACT_COUNT_CONTAINERS = (".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".f4v")  # frame count from the sample index
_OPENCV_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi")
FRAME_NAME = "frame_{:06d}"


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV reports about a video."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int  # 0 when the container does not say
    exact_count: bool  # the count comes from an index (MP4 family), not an estimate


@dataclass
class VideoReport:
    """What a video run wrote."""

    output: Path
    frames: int  # frames translated and written
    skipped: int = 0  # frames already present in an output frame folder
    fps: Fraction | None = None
    size: tuple[int, int] | None = None  # (width, height) of the output frames
    encoder: str = ""  # "ffmpeg/libx264", "opencv/mp4v", "frames"
    audio: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ----------------------------------------------------------------------------- reading


def _fps_fraction(value: float) -> Fraction:
    """The exact rate behind a float: 29.97002997 -> 30000/1001, 25.0 -> 25."""
    for denominator in (1, 1001):
        scaled = value * denominator
        if abs(scaled - round(scaled)) < 0.02 * denominator / 1001 + 1e-6:
            return Fraction(round(scaled), denominator)
    return Fraction(value).limit_denominator(1001)


def open_video(path: str | os.PathLike) -> VideoInfo:
    """Check that ``path`` is a readable video and return its size, rate and frame count."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Video {str(path)!r} does not exist.")
    if path.is_dir():
        raise VideoError(f"{str(path)!r} is a folder; pass a video file, or a folder of frames with --fps.")
    if is_image_file(path):
        raise VideoError(f"{str(path)!r} is an image, not a video; use `i2i translate` for images.")
    if path.stat().st_size == 0:
        raise VideoError(f"cannot read video {str(path)!r}: the file is empty.")
    cap = cv2.VideoCapture(str(path))
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


def parse_position(text: str | int | None, fps: Fraction | None) -> int | None:
    """A frame number from ``120`` (frame), ``5s``/``2.5s`` (seconds) or ``1:30``/``0:01:02.5`` (time).

    Times need ``fps``; a frame number does not.
    """
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    value = text.strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    seconds: float | None = None
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)s", value)
    if match:
        seconds = float(match.group(1))
    match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)", value)
    if match:
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    if seconds is None:
        raise ValueError(
            f"cannot read the position {text!r}: give a frame number (120), seconds (5s, 2.5s) "
            "or a time (1:30, 0:01:02.5)"
        )
    if fps is None:
        raise ValueError(f"the position {text!r} is a time; give --fps, or a frame number instead")
    return round(seconds * float(fps))


def _to_rgb8(frame: np.ndarray) -> np.ndarray:
    """Any ``(H, W, C)`` uint8/uint16 image -> ``(H, W, 3)`` uint8 RGB, as video encoders want."""
    if frame.ndim == 2:
        frame = frame[:, :, None]
    frame = to_uint8(frame)
    if frame.shape[2] in (2, 4):  # alpha has no place in a video
        frame = frame[:, :, :-1]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    return np.ascontiguousarray(frame)


def _decode(
    info: VideoInfo, start: int, end: int | None, stop: threading.Event | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames ``[start, end)`` as ``(index, RGB uint8)``; raises VideoError on a short stream."""
    cap = cv2.VideoCapture(str(info.path))
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
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            elif frame.shape[2] == 4:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield index, frame
            index += 1
    finally:
        cap.release()
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


def _read_frame_file(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except (ValueError, OSError) as exc:
        raise VideoError(f"frame {str(path)!r} cannot be read: {exc}") from None


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(list_images(folder, recursive=False), key=lambda p: natural_key(Path(p.name)))
    if not files:
        raise VideoError(f"no frames ({', '.join(IMAGE_EXTENSIONS)}) found in {str(folder)!r}.")
    return files


def _read_frames(files: Sequence[Path], start: int, end: int | None, stop: threading.Event | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
    chosen = list(enumerate(files))[start:end]
    workers = max(1, min(4, usable_cores()))
    for (index, _), image in zip(chosen, ordered_map(_read_frame_file, [p for _, p in chosen], workers=workers, window=2 * workers)):
        if stop is not None and stop.is_set():
            return
        yield index, image


# ----------------------------------------------------------------------------- writing


def side_by_side(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``[source resized (bicubic) to the output's size | output]`` for a comparison video."""
    source, output = _to_rgb8(source), _to_rgb8(output)
    if source.shape[:2] != output.shape[:2]:
        source = cv2.resize(source, (output.shape[1], output.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.concatenate([source, output], axis=1)


class _OpenCVWriter:
    """The fallback encoder: cv2.VideoWriter (MPEG-4 Part 2 in MP4, Motion JPEG in AVI), no audio."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, extension: str) -> None:
        self.fourcc = "MJPG" if extension == ".avi" else "mp4v"
        self.width, self.height = width, height
        self.frames = 0
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.fourcc), float(fps), (width, height))
        if not self._writer.isOpened():
            raise VideoError(f"OpenCV cannot write a {extension} video to {str(path)!r}.")

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, expected {self.width}x{self.height}")
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


# ----------------------------------------------------------------------------- the pipeline


class _Progress:
    def __init__(self, total: int | None, enabled: bool, desc: str) -> None:
        self._bar = tqdm(total=total, disable=not enabled, unit="frame", desc=desc, dynamic_ncols=True)
        self._lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def _run_frames(
    translator: Translator,
    frames: Iterator[tuple[int, np.ndarray]],
    sink: Callable[[int, np.ndarray, np.ndarray], None],
    progress: _Progress,
    skip: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """Decode thread -> batched inference here -> encode thread. Returns (written, skipped)."""
    depth = max(2, 2 * translator.batch_size)
    counts = [0, 0]

    def encode(item: tuple[int, np.ndarray, np.ndarray]) -> None:
        sink(*item)
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


def _split(start: int, end: int | None, parts: int) -> list[tuple[int, int | None]]:
    """Contiguous frame ranges, one per part; the last one runs to ``end`` (None: the stream's end)."""
    assert end is not None or parts == 1
    if parts == 1:
        return [(start, end)]
    assert end is not None
    bounds = [start + (end - start) * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def _run_parts(
    translators: Sequence[Translator],
    ranges: Sequence[tuple[int, int | None]],
    make_frames: Callable[[int, int | None, threading.Event], Iterator[tuple[int, np.ndarray]]],
    make_sink: Callable[[int], tuple[Callable[[int, np.ndarray, np.ndarray], None], Callable[[], None], Callable[[], None]]],
    progress: _Progress,
    skip: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """Run each range on its own translator in its own thread; first error wins and stops the rest.

    ``make_sink(k)`` returns ``(sink, finish, abort)`` for part ``k``.
    """
    stop = threading.Event()
    errors: list[BaseException] = []
    totals = [[0, 0] for _ in ranges]

    def work(k: int) -> None:
        abort: Callable[[], None] = lambda: None  # noqa: E731
        try:
            sink, finish, abort = make_sink(k)
            totals[k][:] = _run_frames(translators[k], make_frames(*ranges[k], stop), sink, progress, skip)
            if stop.is_set():
                raise VideoError("stopped because another part failed")
            finish()
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the caller
            stop.set()
            abort()
            errors.append(exc)

    if len(ranges) == 1:
        work(0)
    else:
        threads = [threading.Thread(target=work, args=(k,), name=f"i2i-part{k}", daemon=True) for k in range(len(ranges))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C: let every part stop and clean up
            stop.set()
            for thread in threads:
                thread.join()
            raise
    if errors:
        real = [e for e in errors if not (isinstance(e, VideoError) and "another part failed" in str(e))]
        raise (real or errors)[0]
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


def _video_sink(writer: FfmpegWriter | _OpenCVWriter, compare: bool) -> Callable[[int, np.ndarray, np.ndarray], None]:
    def sink(index: int, source: np.ndarray, output: np.ndarray) -> None:
        writer.write(side_by_side(source, output) if compare else _to_rgb8(output))

    return sink


def _frame_sink(folder: Path, ext: str, quality: int | None, compare: bool, names: Callable[[int], str]
                ) -> Callable[[int, np.ndarray, np.ndarray], None]:
    def sink(index: int, source: np.ndarray, output: np.ndarray) -> None:
        write_image(folder / (names(index) + ext), side_by_side(source, output) if compare else output, quality=quality)

    return sink


def _check_video_output(output: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    if any(output.resolve() == p.resolve() for p in inputs):
        raise VideoError(f"the output {str(output)!r} is the input; choose another output file.")
    if output.exists() and not overwrite:
        raise VideoError(f"{str(output)!r} exists; pass --overwrite to replace it.")
    output.parent.mkdir(parents=True, exist_ok=True)


def _resolve_ffmpeg(ffmpeg: str | None) -> str | None:
    return find_ffmpeg() if ffmpeg == "auto" else (find_ffmpeg(ffmpeg) if ffmpeg else None)


def _encode_video(
    translators: Sequence[Translator],
    output: Path,
    ranges: Sequence[tuple[int, int | None]],
    make_frames: Callable[[int, int | None, threading.Event], Iterator[tuple[int, np.ndarray]]],
    *,
    width: int,
    height: int,
    fps: Fraction,
    ffmpeg: str | None,
    ffmpeg_wanted: bool,
    audio: AudioSource | None,
    crf: int,
    preset: str,
    compare: bool,
    progress: _Progress,
) -> VideoReport:
    """Translate frame ranges into one video file at ``output`` (written under a temporary name)."""
    extension = output.suffix.lower()
    scale = translators[0].scale
    out_w, out_h = width * scale * (2 if compare else 1), height * scale
    report = VideoReport(output=output, frames=0, fps=fps, size=(out_w, out_h))
    if ffmpeg is None:
        if extension not in _OPENCV_OUTPUT_EXTENSIONS:
            raise VideoError(f"cannot write {str(output)!r}: use one of {', '.join(_OPENCV_OUTPUT_EXTENSIONS)}.")
        if len(ranges) > 1:
            raise VideoError("joining the parts of several devices needs ffmpeg; pip install imageio-ffmpeg, or use one device.")
        reason = (
            "no ffmpeg binary found (pip install imageio-ffmpeg, or put ffmpeg on PATH)" if ffmpeg_wanted
            else "ffmpeg is switched off"
        )
        warnings.warn(
            f"{reason}: writing with OpenCV's MPEG-4 encoder instead of H.264, and the audio is dropped.",
            RuntimeWarning,
            stacklevel=3,
        )
        temp = _temporary(output)
        writer: FfmpegWriter | _OpenCVWriter = _OpenCVWriter(temp, out_w, out_h, fps, extension)
        report.encoder = f"opencv/{writer.fourcc}"
        try:
            report.frames, _ = _run_parts(
                translators, ranges, make_frames, lambda k: (_video_sink(writer, compare), writer.close, writer.abort), progress
            )
        except BaseException:
            _remove(temp)
            raise
        os.replace(temp, output)
        return report

    if extension not in VIDEO_OUTPUT_EXTENSIONS:
        raise VideoError(f"cannot write {str(output)!r}: use one of {', '.join(VIDEO_OUTPUT_EXTENSIONS)}.")
    if out_w % 2 or out_h % 2:
        report.notes.append(
            f"the output is {out_w}x{out_h}; H.264 yuv420p needs even sizes, so the last row/column is repeated once"
        )
    report.encoder = "ffmpeg/libx264"
    report.audio = audio is not None and any(s.kind == "audio" for s in audio.streams)
    temp = _temporary(output)
    if len(ranges) == 1:
        writer = FfmpegWriter(ffmpeg, temp, out_w, out_h, fps, crf=crf, preset=preset, audio=audio, extension=extension)
        report.notes += writer.notes
        try:
            report.frames, _ = _run_parts(
                translators, ranges, make_frames, lambda k: (_video_sink(writer, compare), writer.close, writer.abort), progress
            )
        except BaseException:
            _remove(temp)
            raise
        os.replace(temp, output)
        return report

    segments = [_temporary(output, f"part{k}").with_suffix(".mp4") for k in range(len(ranges))]
    writers: list[FfmpegWriter | None] = [None] * len(ranges)

    def make_sink(k: int):
        writers[k] = FfmpegWriter(ffmpeg, segments[k], out_w, out_h, fps, crf=crf, preset=preset, extension=".mp4")
        return _video_sink(writers[k], compare), writers[k].close, writers[k].abort

    try:
        report.frames, _ = _run_parts(translators, ranges, make_frames, make_sink, progress)
        report.notes += concat_segments(ffmpeg, segments, temp, audio=audio, extension=extension)
        os.replace(temp, output)
    finally:
        for segment in segments:
            _remove(segment)
        _remove(temp)
    return report


def _as_list(translators: Translator | Sequence[Translator]) -> list[Translator]:
    return [translators] if isinstance(translators, Translator) else list(translators)


def _frame_range(
    start: str | int | None, end: str | int | None, fps: Fraction | None, count: int, exact: bool
) -> tuple[int, int | None]:
    """``(first, last)`` frame numbers; ``last`` is exclusive, None for the end of the stream."""
    first = parse_position(start, fps) or 0
    last = parse_position(end, fps)
    if last is not None and last <= first:
        raise VideoError(f"the range is empty: --end (frame {last}) must come after --start (frame {first}).")
    if exact and count:  # an estimated count may be wrong either way; then the decoder decides
        if first >= count:
            raise VideoError(f"--start is frame {first}, but there are only {count} frames.")
        if last is not None:
            last = min(last, count)
    return first, last


def translate_video(
    translators: Translator | Sequence[Translator],
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    start: str | int | None = None,
    end: str | int | None = None,
    crf: int = 18,
    preset: str = "medium",
    compare: bool = False,
    ffmpeg: str | None = "auto",
    overwrite: bool = False,
    progress: bool = True,
    ext: str = ".png",
    quality: int | None = None,
) -> VideoReport:
    """Translate a video file into a video (``.mp4``, ``.mkv``, ``.mov``, ``.m4v``) or a frame folder.

    Args:
        translators: one translator, or one per device (the frame range is split between them).
        input_path: a video OpenCV can decode.
        output_path: a video file, or a folder for one image per frame (``frame_000123.png``).
        start, end: the frame range, as frame numbers or times (see :func:`parse_position`).
        crf, preset: x264 quality (lower crf = better; 18 is visually lossless) and speed.
        compare: write ``[input | output]`` side by side.
        ffmpeg: ``"auto"`` (find one), a path, or None for OpenCV's writer (no audio).
        overwrite: replace an existing output video, or existing frames in an output folder.
        ext, quality: image format and JPEG/WebP quality of output frames.
    """
    began = time.perf_counter()
    translators = _as_list(translators)
    info = open_video(input_path)
    output = Path(output_path)
    first, last = _frame_range(start, end, info.fps, info.frame_count, info.exact_count)
    if last is None and info.frame_count:
        planned: int | None = info.frame_count - first
    else:
        planned = None if last is None else last - first
    if len(translators) > 1 and last is None:
        if not info.frame_count:
            raise VideoError("splitting a video across devices needs its frame count; give --end.")
        last = info.frame_count
    if planned is not None and len(translators) > planned:
        translators = translators[: max(1, planned)]
    ranges = _split(first, last, len(translators))
    if len(ranges) > 1 and not info.exact_count:
        ranges[-1] = (ranges[-1][0], None if end is None else ranges[-1][1])  # estimated count: read to the end

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return _decode(info, a, b, stop)

    bar = _Progress(planned, progress, "video")
    try:
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            raise VideoError(f"the output {str(output)!r} is an image name; give a video file (.mp4) or a folder for frames.")
        if output.suffix == "" or output.is_dir():
            ext = ext if ext.startswith(".") else "." + ext
            if ext.lower() not in IMAGE_EXTENSIONS:
                raise VideoError(f"frame format {ext!r} is not supported; use one of {', '.join(IMAGE_EXTENSIONS)}.")
            output.mkdir(parents=True, exist_ok=True)

            def names(index: int) -> str:
                return FRAME_NAME.format(index)

            def skip(index: int) -> bool:
                return not overwrite and (output / (names(index) + ext)).exists()

            written, skipped = _run_parts(
                translators, ranges, make_frames,
                lambda k: (_frame_sink(output, ext, quality, compare, names), lambda: None, lambda: None), bar, skip,
            )
            report = VideoReport(output=output, frames=written, skipped=skipped, fps=info.fps, encoder="frames")
        else:
            _check_video_output(output, [info.path], overwrite)
            ffmpeg_exe = _resolve_ffmpeg(ffmpeg)
            audio = None
            if ffmpeg_exe is not None:
                streams = tuple(s for s in probe_streams(info.path, ffmpeg_exe) if s.kind in ("audio", "subtitle"))
                audio = AudioSource(
                    info.path,
                    start=float(first / info.fps),
                    duration=None if last is None else float((last - first) / info.fps),
                    streams=streams,
                )
            report = _encode_video(
                translators, output, ranges, make_frames, width=info.width, height=info.height, fps=info.fps,
                ffmpeg=ffmpeg_exe, ffmpeg_wanted=ffmpeg is not None, audio=audio, crf=crf, preset=preset, compare=compare, progress=bar,
            )
    except FfmpegError as exc:
        raise VideoError(str(exc)) from None
    finally:
        bar.close()
    report.seconds = time.perf_counter() - began
    return report


def translate_frames(
    translators: Translator | Sequence[Translator],
    input_dir: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    fps: float | Fraction | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    crf: int = 18,
    preset: str = "medium",
    compare: bool = False,
    ffmpeg: str | None = "auto",
    overwrite: bool = False,
    progress: bool = True,
    suffix: str = "",
    ext: str | None = None,
    quality: int | None = None,
) -> VideoReport | FolderReport:
    """Translate a folder of numbered frames into a folder (resumable) or into a video at ``fps``.

    Frames are taken in natural order (``2`` before ``10``). To a folder, the names are kept (plus
    ``suffix``/``ext``) and frames already there are skipped unless ``overwrite``; the result is a
    :class:`~i2i.inference.folder.FolderReport`. To a video, every frame must have the same size;
    ``start``/``end`` count frames (or seconds at ``fps``).
    """
    began = time.perf_counter()
    translators = _as_list(translators)
    folder, output = Path(input_dir), Path(output_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"Frame folder {str(folder)!r} does not exist.")
    files = _frame_files(folder)
    rate = Fraction(fps).limit_denominator(1001) if fps else None
    if output.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS + _OPENCV_OUTPUT_EXTENSIONS:
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            raise VideoError(f"the output {str(output)!r} is an image name; give a folder or a video file (.mp4).")
        first, last = _frame_range(start, end, rate, len(files), True)
        chosen = set(files[first:last])
        pairs = [p for p in plan_outputs(folder, output, suffix=suffix, ext=ext, recursive=False, natural_order=True) if p[0] in chosen]
        if len(translators) == 1:
            return translate_pairs(translators[0], pairs, overwrite=overwrite, quality=quality, progress=progress, desc="frames")
        report = FolderReport()
        chunks = [pairs[a:b] for a, b in _split(0, len(pairs), len(translators))]
        results: list[FolderReport | BaseException] = [FolderReport() for _ in chunks]

        def work(k: int) -> None:
            try:
                results[k] = translate_pairs(translators[k], chunks[k], overwrite=overwrite, quality=quality, progress=False)
            except BaseException as exc:  # noqa: BLE001
                results[k] = exc

        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(chunks))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for result in results:
            if isinstance(result, BaseException):
                raise result
            report.written += result.written
            report.skipped += result.skipped
            report.failed += result.failed
        return report

    if rate is None:
        raise VideoError("writing frames to a video needs the frame rate: give --fps (e.g. --fps 24).")
    _check_video_output(output, files, overwrite)
    first, last = _frame_range(start, end, rate, len(files), True)
    last = len(files) if last is None else last
    height, width = _read_frame_file(files[first]).shape[:2]

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in _read_frames(files, a, b, stop):
            if frame.shape[:2] != (height, width):
                raise VideoError(
                    f"frame {str(files[index])!r} is {frame.shape[1]}x{frame.shape[0]}, but the first frame is "
                    f"{width}x{height}; every frame of a video must have the same size."
                )
            yield index, frame

    translators = translators[: max(1, last - first)]
    bar = _Progress(last - first, progress, "frames")
    try:
        report = _encode_video(
            translators, output, _split(first, last, len(translators)), make_frames, width=width, height=height,
            fps=rate, ffmpeg=_resolve_ffmpeg(ffmpeg), ffmpeg_wanted=ffmpeg is not None, audio=None, crf=crf, preset=preset, compare=compare, progress=bar,
        )
    except FfmpegError as exc:
        raise VideoError(str(exc)) from None
    finally:
        bar.close()
    report.seconds = time.perf_counter() - began
    return report
