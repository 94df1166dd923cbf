"""Translate videos and folders of numbered frames.

**Pipeline.** A decode thread (``cv2.VideoCapture``, ffmpeg for sources deeper than 8 bits, or
reader threads for a frame folder) feeds batched inference in the main thread, and an encode thread
writes the results (:mod:`i2i.inference.video_pipeline`); memory stays flat for any video length.
The progress bar shows frames/s and the ETA.

**Output.** A video output has the input's frames, each shown at its source frame's time: every
decoded frame is translated and written exactly once, in order; a constant-rate source stays
frame-exact and a variable-rate one keeps its timing (:mod:`i2i.inference.video_source`). It is
H.264 MP4 that plays in browsers (``crf``/``preset``) in the source's colour matrix, range,
primaries and transfer, 10-bit (``yuv420p10le``) for a source of more than 8 bits or a folder of
16-bit frames (8-bit with a warning where the libx264 has no 10-bit), with the source's audio and
subtitles muxed back without re-encoding (MP4 cannot hold every codec: such audio is re-encoded to
AAC with a warning, ``.mkv`` keeps anything). Without ffmpeg, OpenCV's writer is used with a
warning that the audio is dropped (and 16-bit frames become 8-bit, also with a warning). Nothing
appears at the output name until the video is complete.

**Resuming.** The H.264 output is written as closed segments in ``OUTPUT.parts/`` and joined
losslessly at the end (:mod:`i2i.inference.video_segments`): after an error, Ctrl-C or SIGTERM,
running the same command again keeps the finished segments and continues from the first missing
one. ``segment_seconds`` (``--segment-seconds``) sets their length: by default the
``I2I_VIDEO_SEGMENT_SECONDS`` environment variable, else 10 s.

**Options.** One :class:`VideoOptions` holds every choice (range, encoder, compare, overwrite,
frame format); the command line builds it from its options.

**Ranges.** ``start``/``end`` are frame numbers (``120``) or times (``5s``, ``2.5s``, ``1:30``,
``0:01:02.5``: the first frame shown at or after that time, also on a variable-rate video); ``end``
is exclusive. The audio is cut to the same span.

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

**Several devices and processes.** Given several translators (``--devices 0,1``), the work is
split into contiguous parts by frame index, one per device, run side by side by
:func:`~i2i.inference.pipeline.run_parts`. Started by torchrun (``torchrun --nproc-per-node 2 -m
i2i video ...``), each process takes its own contiguous block of segments
(:mod:`i2i.shard`) and rank 0 joins them once every rank is done; to a frame folder,
each process writes its own contiguous stretch of frames, and a video's report on rank 0 counts
them all.

**Progress.** ``VideoOptions.on_progress(done, total)`` is called as frames are written (the web
UI's progress bar); the terminal's bar is tqdm's.
"""
from __future__ import annotations

import bisect
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from i2i.data.io import IMAGE_EXTENSIONS
from i2i.errors import UsageError, VideoError
from i2i.inference.ffmpeg import VIDEO_OUTPUT_EXTENSIONS, ColourTags, probe_streams
from i2i.inference.folder import FolderReport, plan_outputs, translate_pairs
from i2i.inference.pipeline import run_parts
from i2i.shard import current_shard
from i2i.inference.translator import Translator
from i2i.inference.video_io import (
    OPENCV_OUTPUT_EXTENSIONS,
    FrameFolderSink,
    VideoInfo,
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
from i2i.inference.video_pipeline import (
    Progress,
    ProgressCallback,
    VideoReport,
    output_size,
    translate_parts,
    write_segmented,
    write_with_opencv,
)
from i2i.inference.video_segments import SEGMENT_SECONDS, EncodeSettings, encoder_colour
from i2i.inference.video_source import Timeline, constant_timeline, decode_source, scan_timeline, source_colour

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
SEGMENT_ENVIRONMENT = "I2I_VIDEO_SEGMENT_SECONDS"  # the default segment length, in seconds


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
        segment_seconds: length of the closed segments a video output is written in (a rerun
            after an interruption continues from the first missing one); None: the
            ``I2I_VIDEO_SEGMENT_SECONDS`` environment variable, else 10.
        on_progress: called as ``on_progress(done, total)`` from a worker thread each time a frame
            is written to a video, or from a video to a frame folder (frames of kept segments count
            as done; ``total`` is 0 while unknown); an exception it raises stops the run.
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
    segment_seconds: float | None = None
    on_progress: ProgressCallback | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.segment_seconds is None:
            text = os.environ.get(SEGMENT_ENVIRONMENT, "").strip()
            try:
                object.__setattr__(self, "segment_seconds", float(text) if text else SEGMENT_SECONDS)
            except ValueError:
                raise UsageError(f"{SEGMENT_ENVIRONMENT}={text!r} is not a number of seconds") from None
        if not self.segment_seconds > 0:  # type: ignore[operator]
            raise UsageError(f"the segment length must be a positive number of seconds, got {self.segment_seconds}")
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


# ----------------------------------------------------------------------------- ranges


def position_seconds(text: str | int | None, *, option: str = "the position") -> float | None:
    """The time ``text`` names (``5s``, ``2.5s``, ``1:30``, ``0:01:02.5``) in seconds; None for a
    frame number (``120``) or nothing. Raises UsageError naming ``option`` for anything else."""
    if text is None or text == "" or isinstance(text, int) or re.fullmatch(r"\d+", text.strip()):
        return None
    value = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)s", value)
    if match:
        return float(match.group(1))
    match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)", value)
    if match:
        hours, minutes, secs = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    raise UsageError(
        f"cannot read {option} {text!r}: give a frame number (120), seconds (5s, 2.5s) or a time (1:30, 0:01:02.5)"
    )


def parse_position(text: str | int | None, fps: Fraction | None, *, option: str = "the position") -> int | None:
    """A frame number from ``120`` (frame), ``5s``/``2.5s`` (seconds) or ``1:30``/``0:01:02.5`` (time).

    Times need ``fps``; a frame number does not. Raises UsageError naming ``option``.
    """
    seconds = position_seconds(text, option=option)
    if seconds is None:
        return None if text is None or text == "" else int(text)
    if fps is None:
        raise UsageError(f"{option} {text!r} is a time; give --fps, or a frame number instead")
    return round(seconds * float(fps))


def _timed_range(options: VideoOptions, whole: Timeline) -> Timeline:
    """The part of a stream's ``whole`` timeline that ``--start``/``--end`` name. On a variable-rate
    stream a time is the first frame shown at or after it (the nominal rate would miss it)."""
    def frame_at(text: str | int | None, option: str) -> int | None:
        seconds = position_seconds(text, option=option)
        if seconds is None or whole.times is None:
            return parse_position(text, whole.fps, option=option)
        return bisect.bisect_left(whole.times, seconds - 0.0005)

    first = frame_at(options.start, "--start") or 0
    last = frame_at(options.end, "--end")
    if last is not None and last <= first:
        raise UsageError(f"the range is empty: --end (frame {last}) must come after --start (frame {first}).")
    if first >= whole.last:
        raise VideoError(f"--start is frame {first}, but there are only {whole.count} frames.")
    return whole.span(first, whole.last if last is None else min(last, whole.last))


def _given_times(options: VideoOptions, info: VideoInfo, ffmpeg: str | None) -> Timeline | None:
    """The range ``--start``/``--end`` name when either is a time (the frames' own times say which
    frame that is), else None."""
    if position_seconds(options.start) is None and position_seconds(options.end) is None:
        return None
    return _timed_range(options, scan_timeline(info, ffmpeg, 0, None, progress=options.progress))


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
        translators: one translator, or one per device (the segments, or for a frame folder the
            frame range, are split between them).
        input_path: a video OpenCV can decode.
        output_path: a video file (written in resumable segments beside it, see the module
            docstring), or a folder for one image per frame (``frame_000123.png``).
        options: range, encoder and output choices (:class:`VideoOptions`; ``fps`` and ``suffix``
            are for frame folders and not used here).
    """
    options = options or VideoOptions()
    began = time.perf_counter()
    translators = _as_list(translators)
    info = open_video(input_path)
    output = Path(output_path)
    first, last = _frame_range(options, info.fps, info.frame_count, info.exact_count)
    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(f"the output {str(output)!r} is an image name; give a video file (.mp4) or a folder for frames.")
    if output.suffix == "" or output.is_dir():
        timed = _given_times(options, info, resolve_ffmpeg(options.ffmpeg))
        if timed is not None:
            first, last = timed.first, None if options.end is None else timed.last
        report = _video_to_frames(translators, info, first, last, output, options)
    else:
        check_video_output(output, [info.path], options.overwrite)
        report = _video_to_video(translators, info, first, last, output, options)
    report.seconds = time.perf_counter() - began
    return report


def _video_to_video(
    translators: Sequence[Translator], info: VideoInfo, first: int, last: int | None, output: Path, options: VideoOptions
) -> VideoReport:
    """Frames ``[first, last)`` of a video into a video: segmented H.264 with ffmpeg, else OpenCV."""
    ffmpeg = resolve_ffmpeg(options.ffmpeg)
    if ffmpeg is None:
        def opencv_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
            return decode_video(info, a, b, stop)

        planned = (info.frame_count if last is None else last) - first if info.frame_count or last else None
        with Progress(planned, options.progress, "video", options.on_progress) as bar:
            report = write_with_opencv(translators, first, last, opencv_frames, output, info.fps, compare=options.compare,
                                       ffmpeg_wanted=options.ffmpeg is not None, progress=bar)
        return report
    timeline = _given_times(options, info, ffmpeg) or scan_timeline(info, ffmpeg, first, last, progress=options.progress)
    first, last = timeline.first, None if options.end is None else timeline.last
    probed = probe_streams(info.path, ffmpeg)  # once: the video's colour, the audio and subtitles to carry
    colour = source_colour(probed)

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return decode_source(info, ffmpeg, colour, a, b, stop)

    width, height = output_size(translators[0], info.width, info.height, options.compare)
    encoded = encoder_colour(colour, ffmpeg, f"the {colour.bit_depth}-bit video is")
    settings = EncodeSettings(ffmpeg, width, height, options.crf, options.preset, encoded, options.compare)
    streams = [s for s in probed if s.kind in ("audio", "subtitle")]
    return write_segmented(translators, info.path, timeline, make_frames, output, settings,
                           segment_seconds=float(options.segment_seconds or SEGMENT_SECONDS), progress=options.progress,
                           streams=streams, to_the_end=last is None, on_progress=options.on_progress)


def _process_share(info: VideoInfo, first: int, last: int | None, to_the_end: bool) -> tuple[int, int | None]:
    """This process's contiguous stretch of frames ``[first, last)`` under torchrun (all of them
    in one process); the last process reads to the end of a stream whose count is estimated."""
    shard = current_shard()
    if shard.world_size == 1:
        return first, last
    if last is None:
        if not info.frame_count:
            raise VideoError("splitting a video between processes needs its frame count; give --end.")
        last = info.frame_count
    mine = shard.range(last - first)
    if shard.rank == shard.world_size - 1 and to_the_end and not info.exact_count:
        return first + mine.start, None
    return first + mine.start, first + mine.stop


def _video_to_frames(
    translators: Sequence[Translator], info: VideoInfo, first: int, last: int | None, output: Path,
    options: VideoOptions,
) -> VideoReport:
    """Frames ``[first, last)`` into ``output/frame_000123.png``, split between devices and (under
    torchrun) processes; frames already there are skipped unless overwriting. On rank 0 the report
    counts every process's frames once all are done."""
    first, last = _process_share(info, first, last, options.end is None)
    make_folder(output)
    sink = FrameFolderSink(output, options.ext or ".png", options.quality, options.compare)

    def skip(index: int) -> bool:
        return not options.overwrite and sink.path(index).exists()

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return decode_video(info, a, b, stop)

    written = skipped = 0
    if last is None or last > first:  # more processes than frames leave some with none
        ranges, planned, last = _video_parts(info, first, last, len(translators), last is None)
        with Progress(planned, options.progress, "video", options.on_progress) as bar:
            written, skipped = translate_parts(translators[: len(ranges)], ranges, make_frames, lambda k: sink, bar, skip)
    shard = current_shard()
    if shard.world_size > 1:  # also the barrier: rank 0 reports once every frame is written
        written, skipped = (sum(counts) for counts in zip(*shard.gather((written, skipped))))
    return VideoReport(output=output, frames=written, skipped=skipped, fps=info.fps, encoder="frames")


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
    ``start``/``end`` count frames (or seconds at ``fps``). Under torchrun each process translates
    its contiguous stretch of the frames; to a folder, the report is that process's share.
    """
    options = options or VideoOptions()
    translators = _as_list(translators)
    folder, output = Path(input_dir), Path(output_path)
    files = frame_files(folder)
    rate = Fraction(options.fps).limit_denominator(1001) if options.fps else None
    if output.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS + OPENCV_OUTPUT_EXTENSIONS:
        return _frames_to_video(translators, folder, files, output, rate, options)
    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(f"the output {str(output)!r} is an image name; give a folder or a video file (.mp4).")
    first, last = _frame_range(options, rate, len(files), True)
    chosen = set(files[first:last])
    planned = plan_outputs(
        folder, output, suffix=options.suffix, ext=options.ext, recursive=False, natural_order=True
    )
    pairs = [pair for pair in planned if pair[0] in chosen]
    pairs = [pairs[i] for i in current_shard().range(len(pairs))]  # this process's stretch under torchrun
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
    translators: Sequence[Translator], folder: Path, files: Sequence[Path], output: Path, rate: Fraction | None,
    options: VideoOptions,
) -> VideoReport:
    """Frame files (all of one size) into a video at ``rate``."""
    began = time.perf_counter()
    if rate is None:
        raise UsageError("writing frames to a video needs the frame rate: give --fps (e.g. --fps 24).")
    check_video_output(output, files, options.overwrite)
    first, last = _frame_range(options, rate, len(files), True)
    last = len(files) if last is None else last
    sample = read_frame_file(files[first])
    height, width = sample.shape[:2]
    depth = 16 if sample.dtype == np.uint16 else 8

    def make_frames(a: int, b: int | None, stop: threading.Event) -> Iterator[tuple[int, np.ndarray]]:
        return read_frames(files, a, b, stop, size=(height, width))

    ffmpeg = resolve_ffmpeg(options.ffmpeg)
    if ffmpeg is None:
        if depth > 8:
            warnings.warn("the 16-bit frames are written as 8-bit: OpenCV's writer has 8 bits only; with ffmpeg "
                          "(pip install imageio-ffmpeg) they become 10-bit H.264", RuntimeWarning, stacklevel=2)
        with Progress(last - first, options.progress, "frames", options.on_progress) as bar:
            report = write_with_opencv(translators, first, last, make_frames, output, rate, compare=options.compare,
                                       ffmpeg_wanted=options.ffmpeg is not None, progress=bar)
    else:
        out_width, out_height = output_size(translators[0], width, height, options.compare)
        colour = encoder_colour(ColourTags(bit_depth=depth), ffmpeg, "the 16-bit frames are")
        settings = EncodeSettings(ffmpeg, out_width, out_height, options.crf, options.preset, colour, options.compare)
        report = write_segmented(
            translators, folder, constant_timeline(first, last, rate), make_frames, output, settings,
            segment_seconds=float(options.segment_seconds or SEGMENT_SECONDS), progress=options.progress,
            on_progress=options.on_progress,
        )
    report.seconds = time.perf_counter() - began
    return report
