"""Translate videos and folders of numbered frames.

**Pipeline.** A decode thread (``cv2.VideoCapture``, or reader threads for a frame folder) feeds
batched inference in the main thread, and an encode thread writes the results; bounded queues join
them, so memory stays flat for any video length. The progress bar shows frames/s and the ETA.

**Output.** A video output has the input's frame count and frame rate: every decoded frame is
translated and written exactly once, in order. It is H.264 yuv420p MP4 that plays in browsers
(``crf``/``preset``) with the source's audio and subtitles muxed back without re-encoding (MP4
cannot hold every codec: such audio is re-encoded to AAC with a warning, ``.mkv`` keeps anything);
without ffmpeg, OpenCV's writer is used with a warning that the audio is dropped. Nothing appears
at the output name until the video is complete (:mod:`i2i.inference.video_io`).

**Options.** One :class:`VideoOptions` holds every choice (range, encoder, compare, overwrite,
frame format); the command line builds it from its options.

**Ranges.** ``start``/``end`` are frame numbers (``120``) or times (``5s``, ``2.5s``, ``1:30``,
``0:01:02.5``); ``end`` is exclusive. The audio is cut to the same span.

**Frame folders.** A folder of numbered frames (``frame_1.png``, ``frame_2.png``, ... ordered by
the numbers, not as text) goes to a folder (resumable: frames already there are skipped) or to a
video at ``fps``. A video can also go to a frame folder (``frame_000000.png`` ..., named by frame
number, resumable).

**Bad input.** A missing file, a file that is not a video, a video with no decodable frame and a
stream that ends before the frame count its container announces raise :class:`VideoError` with the
reason; nothing is written then. Option values that cannot work raise
:class:`~i2i.errors.UsageError`. A video named like a URL (``concat:a.mp4``, ``file:x.mp4``) is
always read and written as the file of that name (:func:`~i2i.inference.ffmpeg.media_path`). A
frame that cannot be written (a full, read-only or forbidden disk) stops the run with one
:class:`VideoError` naming it; the frames already written stay, so the run can be repeated.

**Several devices.** Given several translators (``--devices 0,1``), the work is split into
contiguous parts by frame index, one per device, run side by side by
:func:`~i2i.inference.pipeline.run_parts`: for a video output each part is decoded, translated and
encoded by its own threads and the H.264 parts are joined without re-encoding before the audio is
muxed in; for a frame folder each part is a run of the folder translator. This runs in one
process on one machine.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from i2i.data.io import IMAGE_EXTENSIONS
from i2i.errors import UsageError, VideoError
from i2i.inference.folder import FolderReport, plan_outputs, translate_pairs
from i2i.inference.pipeline import Consumer, PartStopped, Prefetcher, run_parts
from i2i.inference.translator import Translator
from i2i.inference.video_io import (
    OPENCV_OUTPUT_EXTENSIONS,
    VIDEO_OUTPUT_EXTENSIONS,
    FrameFolderSink,
    FrameSink,
    VideoInfo,
    VideoSink,
    VideoTarget,
    audio_source,
    check_video_output,
    decode_video,
    frame_files,
    make_folder,
    open_video,
    read_frame_file,
    read_frames,
    resolve_ffmpeg,
    side_by_side,
)

__all__ = [
    "VideoError",
    "VideoInfo",
    "VideoOptions",
    "VideoReport",
    "PRESETS",
    "open_video",
    "parse_position",
    "translate_video",
    "translate_frames",
    "side_by_side",
]

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
FrameSource = Callable[[int, "int | None", threading.Event], Iterator[tuple[int, np.ndarray]]]


@dataclass(frozen=True)
class VideoOptions:
    """How a video or a frame folder is translated.

    Args:
        start, end: the frame range, as frame numbers or times (see :func:`parse_position`).
        fps: the frame rate of a frame folder written to a video.
        crf, preset: x264 quality (lower crf = better; 18 is visually lossless) and speed.
        compare: write ``[input | output]`` side by side.
        ffmpeg: ``"auto"`` (find one), a path, or None for OpenCV's writer (no audio).
        overwrite: replace an existing output video, or existing frames in an output folder.
        progress: show a progress bar.
        ext, quality: image format (``.png`` from a video; a frame folder keeps its frames' format
            unless given) and JPEG/WebP quality of output frames.
        suffix: appended to frame names (frame folder to frame folder).
    """

    start: str | int | None = None
    end: str | int | None = None
    fps: float | Fraction | None = None
    crf: int = 18
    preset: str = "medium"
    compare: bool = False
    ffmpeg: str | None = "auto"
    overwrite: bool = False
    progress: bool = True
    ext: str | None = None
    suffix: str = ""
    quality: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise UsageError(f"--crf must be from 0 to 51 (lower is better), got {self.crf}")
        if self.preset not in PRESETS:
            raise UsageError(f"--preset {self.preset!r} is not an x264 preset; use one of {', '.join(PRESETS)}")
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"--fps must be a positive frame rate, got {self.fps}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise UsageError(f"--quality must be from 1 to 100, got {self.quality}")
        if self.ext is not None:
            ext = self.ext if self.ext.startswith(".") else "." + self.ext
            if ext.lower() not in IMAGE_EXTENSIONS:
                raise UsageError(f"frame format {ext!r} is not supported; use one of {', '.join(IMAGE_EXTENSIONS)}.")
            object.__setattr__(self, "ext", ext)


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


# ----------------------------------------------------------------------------- ranges


def parse_position(text: str | int | None, fps: Fraction | None, *, option: str = "the position") -> int | None:
    """A frame number from ``120`` (frame), ``5s``/``2.5s`` (seconds) or ``1:30``/``0:01:02.5`` (time).

    Times need ``fps``; a frame number does not. Raises UsageError naming ``option``.
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
        raise UsageError(
            f"cannot read {option} {text!r}: give a frame number (120), seconds (5s, 2.5s) "
            "or a time (1:30, 0:01:02.5)"
        )
    if fps is None:
        raise UsageError(f"{option} {text!r} is a time; give --fps, or a frame number instead")
    return round(seconds * float(fps))


def _frame_range(options: VideoOptions, fps: Fraction | None, count: int, exact: bool) -> tuple[int, int | None]:
    """``(first, last)`` frame numbers; ``last`` is exclusive, None for the end of the stream."""
    first = parse_position(options.start, fps, option="--start") or 0
    last = parse_position(options.end, fps, option="--end")
    if last is not None and last <= first:
        raise UsageError(f"the range is empty: --end (frame {last}) must come after --start (frame {first}).")
    if exact and count:  # an estimated count may be wrong either way; then the decoder decides
        if first >= count:
            raise VideoError(f"--start is frame {first}, but there are only {count} frames.")
        if last is not None:
            last = min(last, count)
    return first, last


def _split(start: int, end: int | None, parts: int) -> list[tuple[int, int | None]]:
    """Contiguous frame ranges, one per part; the last one runs to ``end`` (None: the stream's end)."""
    if parts == 1:
        return [(start, end)]
    assert end is not None
    bounds = [start + (end - start) * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def _video_parts(
    info: VideoInfo, first: int, last: int | None, devices: int, to_the_end: bool
) -> tuple[list[tuple[int, int | None]], int | None, int | None]:
    """``(ranges, planned frame count or None, last)`` for ``devices`` translators."""
    if last is None and info.frame_count:
        planned: int | None = info.frame_count - first
    else:
        planned = None if last is None else last - first
    if devices > 1 and last is None:
        if not info.frame_count:
            raise VideoError("splitting a video across devices needs its frame count; give --end.")
        last = info.frame_count
    if planned is not None:
        devices = min(devices, max(1, planned))
    ranges = _split(first, last, devices)
    if len(ranges) > 1 and not info.exact_count and to_the_end:
        ranges[-1] = (ranges[-1][0], None)  # an estimated count: the last part reads to the end
    return ranges, planned, last


# ----------------------------------------------------------------------------- the pipeline


class _Progress:
    def __init__(self, total: int | None, enabled: bool, desc: str) -> None:
        self._bar = tqdm(total=total, disable=not enabled, unit="frame", desc=desc, dynamic_ncols=True)
        self._lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self._bar.update(n)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _run_frames(
    translator: Translator,
    frames: Iterator[tuple[int, np.ndarray]],
    sink: FrameSink,
    progress: _Progress,
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


def _translate_parts(
    translators: Sequence[Translator],
    ranges: Sequence[tuple[int, int | None]],
    make_frames: FrameSource,
    make_sink: Callable[[int], FrameSink],
    progress: _Progress,
    skip: Callable[[int], bool] | None = None,
) -> tuple[int, int]:
    """Each range on its own translator, side by side; returns (written, skipped) in total."""

    def work(k: int, stop: threading.Event) -> tuple[int, int]:
        sink: FrameSink | None = None
        try:
            sink = make_sink(k)
            counts = _run_frames(translators[k], make_frames(*ranges[k], stop), sink, progress, skip)
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


def _to_video(
    translators: Sequence[Translator],
    ranges: Sequence[tuple[int, int | None]],
    make_frames: FrameSource,
    target: VideoTarget,
    options: VideoOptions,
    progress: _Progress,
) -> VideoReport:
    """Translate frame ranges into ``target``, one writer per range."""
    with target:
        frames, _ = _translate_parts(
            translators, ranges, make_frames, lambda k: VideoSink(target.open(k), options.compare), progress
        )
        target.commit()
    return VideoReport(
        output=target.output, frames=frames, fps=target.fps, size=(target.width, target.height),
        encoder=target.encoder, audio=target.audio, notes=target.notes,
    )


def _output_size(translator: Translator, width: int, height: int, compare: bool) -> tuple[int, int]:
    out_height, out_width = translator.output_size(height, width)
    return out_width * (2 if compare else 1), out_height


def _as_list(translators: Translator | Sequence[Translator]) -> list[Translator]:
    return [translators] if isinstance(translators, Translator) else list(translators)


# ----------------------------------------------------------------------------- videos


def translate_video(
    translators: Translator | Sequence[Translator],
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: VideoOptions | None = None,
) -> VideoReport:
    """Translate a video file into a video (``.mp4``, ``.mkv``, ``.mov``, ``.m4v``) or a frame folder.

    Args:
        translators: one translator, or one per device (the frame range is split between them).
        input_path: a video OpenCV can decode.
        output_path: a video file, or a folder for one image per frame (``frame_000123.png``).
        options: range, encoder and output choices (:class:`VideoOptions`; ``fps`` and ``suffix``
            are for frame folders and not used here).
    """
    options = options or VideoOptions()
    began = time.perf_counter()
    translators = _as_list(translators)
    info = open_video(input_path)
    output = Path(output_path)
    first, last = _frame_range(options, info.fps, info.frame_count, info.exact_count)
    ranges, planned, last = _video_parts(info, first, last, len(translators), options.end is None)
    translators = translators[: len(ranges)]

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return decode_video(info, a, b, stop)

    with _Progress(planned, options.progress, "video") as bar:
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            raise VideoError(f"the output {str(output)!r} is an image name; give a video file (.mp4) or a folder for frames.")
        if output.suffix == "" or output.is_dir():
            report = _video_to_frames(translators, ranges, make_frames, output, options, bar)
            report.fps = info.fps
        else:
            check_video_output(output, [info.path], options.overwrite)
            ffmpeg = resolve_ffmpeg(options.ffmpeg)
            target = VideoTarget(
                output, *_output_size(translators[0], info.width, info.height, options.compare), info.fps,
                parts=len(ranges), ffmpeg=ffmpeg, ffmpeg_wanted=options.ffmpeg is not None,
                audio=audio_source(info.path, ffmpeg, first, last, info.fps), crf=options.crf, preset=options.preset,
            )
            report = _to_video(translators, ranges, make_frames, target, options, bar)
    report.seconds = time.perf_counter() - began
    return report


def _video_to_frames(
    translators: Sequence[Translator],
    ranges: Sequence[tuple[int, int | None]],
    make_frames: FrameSource,
    output: Path,
    options: VideoOptions,
    progress: _Progress,
) -> VideoReport:
    """Video frames into ``output/frame_000123.png``; frames already there are skipped unless overwriting."""
    make_folder(output)
    sink = FrameFolderSink(output, options.ext or ".png", options.quality, options.compare)

    def skip(index: int) -> bool:
        return not options.overwrite and sink.path(index).exists()

    written, skipped = _translate_parts(translators, ranges, make_frames, lambda k: sink, progress, skip)
    return VideoReport(output=output, frames=written, skipped=skipped, encoder="frames")


# ----------------------------------------------------------------------------- frame folders


def translate_frames(
    translators: Translator | Sequence[Translator],
    input_dir: str | os.PathLike,
    output_path: str | os.PathLike,
    options: VideoOptions | None = None,
) -> VideoReport | FolderReport:
    """Translate a folder of numbered frames into a folder (resumable) or into a video at ``options.fps``.

    Frames are taken in natural order (``2`` before ``10``). To a folder, the names are kept (plus
    ``suffix``/``ext``) and frames already there are skipped unless ``overwrite``; the result is a
    :class:`~i2i.inference.folder.FolderReport`. To a video, every frame must have the same size;
    ``start``/``end`` count frames (or seconds at ``fps``).
    """
    options = options or VideoOptions()
    translators = _as_list(translators)
    folder, output = Path(input_dir), Path(output_path)
    files = frame_files(folder)
    rate = Fraction(options.fps).limit_denominator(1001) if options.fps else None
    if output.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS + OPENCV_OUTPUT_EXTENSIONS:
        return _frames_to_video(translators, files, output, rate, options)
    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(f"the output {str(output)!r} is an image name; give a folder or a video file (.mp4).")
    first, last = _frame_range(options, rate, len(files), True)
    chosen = set(files[first:last])
    planned = plan_outputs(
        folder, output, suffix=options.suffix, ext=options.ext, recursive=False, natural_order=True
    )
    pairs = [pair for pair in planned if pair[0] in chosen]
    chunks = [pairs[a:b] for a, b in _split(0, len(pairs), len(translators))]
    results = run_parts(len(chunks), lambda k, stop: translate_pairs(
        translators[k], chunks[k], overwrite=options.overwrite, quality=options.quality,
        progress=options.progress and len(chunks) == 1, desc="frames",
    ))
    report = FolderReport()
    for result in results:
        report.written += result.written
        report.skipped += result.skipped
        report.failed += result.failed
    return report


def _frames_to_video(
    translators: Sequence[Translator], files: Sequence[Path], output: Path, rate: Fraction | None, options: VideoOptions
) -> VideoReport:
    """Frame files (all of one size) into a video at ``rate``."""
    began = time.perf_counter()
    if rate is None:
        raise UsageError("writing frames to a video needs the frame rate: give --fps (e.g. --fps 24).")
    check_video_output(output, files, options.overwrite)
    first, last = _frame_range(options, rate, len(files), True)
    last = len(files) if last is None else last
    height, width = read_frame_file(files[first]).shape[:2]

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return read_frames(files, a, b, stop, size=(height, width))

    translators = translators[: max(1, last - first)]
    ranges = _split(first, last, len(translators))
    with _Progress(last - first, options.progress, "frames") as bar:
        ffmpeg = resolve_ffmpeg(options.ffmpeg)
        target = VideoTarget(
            output, *_output_size(translators[0], width, height, options.compare), rate, parts=len(ranges),
            ffmpeg=ffmpeg, ffmpeg_wanted=options.ffmpeg is not None, crf=options.crf, preset=options.preset,
        )
        report = _to_video(translators, ranges, make_frames, target, options, bar)
    report.seconds = time.perf_counter() - began
    return report
