"""The ffmpeg binary: finding it, reading what a file holds, encoding raw frames to H.264.

No ffprobe is needed: stream information is read from the ``Stream #0:N: Kind: codec`` lines that
``ffmpeg -i FILE`` prints. ffmpeg is found in this order: an explicit path, the ``I2I_FFMPEG``
environment variable, the binary shipped by the ``imageio-ffmpeg`` package, ``ffmpeg`` on PATH.

File names reach ffmpeg (and OpenCV's FFmpeg backend) through :func:`media_path`, as absolute
paths: a relative name such as ``concat:a.mp4|b.mp4``, ``file:x.mp4`` or ``http:...`` would
otherwise be taken as a protocol URL and read (or write) another file, and a name starting with
``-`` as an option.

**Colour.** :func:`colour_tags` reads a video stream's matrix, range, primaries, transfer and bit
depth from that line; the encoder converts RGB to YUV with the same matrix and range and tags the
output with all four, and a source of more than 8 bits gives a 10-bit output (``yuv420p10le``).
An untagged source is taken as BT.601, the matrix its frames were decoded with.

**Timestamps.** A writer given each frame's time (a variable-frame-rate source) stamps the frames
with them through a ``setpts`` expression (a balanced ``if(lt(N, k), ...)`` tree, so its depth stays
logarithmic), at 1/90000 s; without, frame ``n`` is at ``n / fps`` exactly.
:func:`packet_times` reads a stream's packet times without decoding.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from i2i.errors import VideoError

__all__ = [
    "find_ffmpeg", "media_path", "Stream", "probe_streams", "ColourTags", "colour_tags", "packet_times",
    "FfmpegWriter", "concat_segments", "FfmpegError", "TIMESTAMP_RATE", "encodes_10_bit",
]

TIMESTAMP_RATE = 90000  # ticks per second of variable-rate output (MPEG's clock: exact for 24, 25, 30000/1001 ...)


class FfmpegError(VideoError):
    """ffmpeg failed; the message holds the end of its error output."""


def media_path(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg must see it to take it as a file: absolute (see the module docstring).

    ffmpeg reads ``proto:rest`` as a URL when ``proto`` is made of letters, digits, ``+``, ``-``
    and ``.``; an absolute path starts with ``/`` (or a drive letter, which ffmpeg recognises), so
    it is always the file of that name.
    """
    return os.path.abspath(os.fspath(path))


def find_ffmpeg(explicit: str | os.PathLike | None = None) -> str | None:
    """Path of an ffmpeg binary, or None when there is none."""
    if explicit:
        found = shutil.which(str(explicit))
        if found is None:
            raise VideoError(f"ffmpeg binary {str(explicit)!r} does not exist or is not executable; fix --ffmpeg (or I2I_FFMPEG).")
        return found
    env = os.environ.get("I2I_FFMPEG")
    if env:
        return find_ffmpeg(env)
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).is_file():
            return exe
    except (ImportError, RuntimeError, OSError):
        pass
    return shutil.which("ffmpeg")


@functools.lru_cache(maxsize=None)
def encodes_10_bit(ffmpeg: str) -> bool:
    """Whether this ffmpeg's libx264 writes 10-bit 4:2:0 (``yuv420p10le``); some builds have 8 bits only."""
    try:
        text = subprocess.run([ffmpeg, "-hide_banner", "-h", "encoder=libx264"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "yuv420p10le" in text


@dataclass(frozen=True)
class Stream:
    """One stream of a media file as ffmpeg describes it."""

    index: int
    kind: str  # "video", "audio", "subtitle", "data", "attachment"
    codec: str
    description: str  # the rest of ffmpeg's line: pixel format, size, fps, sample rate ...

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of a video stream."""
        match = re.search(r"\b(\d{2,5})x(\d{2,5})\b", self.description)
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def fps(self) -> float | None:
        match = re.search(r"([\d.]+)(k?) fps", self.description)
        if not match:
            return None
        return float(match.group(1)) * (1000 if match.group(2) else 1)

    @property
    def attached_picture(self) -> bool:
        return "(attached pic)" in self.description


_STREAM_LINE = re.compile(
    r"^\s*Stream #\d+:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (Video|Audio|Subtitle|Data|Attachment): (\w+)(.*)$"
)


def probe_streams(path: str | os.PathLike, ffmpeg: str) -> list[Stream]:
    """The streams of ``path`` (empty when ffmpeg cannot read it)."""
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", media_path(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
    )
    streams = []
    for line in result.stderr.decode("utf-8", "replace").splitlines():
        match = _STREAM_LINE.match(line)
        if match:
            index, kind, codec, rest = match.groups()
            streams.append(Stream(int(index), kind.lower(), codec, rest.strip()))
    return streams


# Colour matrix tag (what ffmpeg prints) -> the name swscale's scale filter takes for it.
_SCALE_MATRIX = {
    "bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470", "fcc": "fcc", "smpte240m": "smpte240m",
    "bt2020nc": "bt2020", "bt2020c": "bt2020",
}
_PIXEL_FORMAT = re.compile(r"(?:^|,\s*)([a-z][a-z0-9_]*)(?:\(([^)]*)\))?,\s*\d+x\d+")


@dataclass(frozen=True)
class ColourTags:
    """How a video's YUV samples are to be read: matrix, range, primaries, transfer, bit depth.

    ``matrix`` is ffmpeg's colour space name (``bt709``, ``smpte170m``, ``bt470bg``, ...);
    ``primaries``/``transfer`` are carried as tags only (pixels are never converted between them);
    ``None`` means the source does not say.
    """

    matrix: str = "smpte170m"
    range: str = "tv"  # "tv": limited (16-235), "pc": full (0-255)
    primaries: str | None = None
    transfer: str | None = None
    bit_depth: int = 8

    @property
    def scale_matrix(self) -> str:
        """The matrix as swscale names it; BT.601 for anything it does not know."""
        return _SCALE_MATRIX.get(self.matrix, "bt601")

    @property
    def pixel_format(self) -> str:
        return "yuv420p10le" if self.bit_depth > 8 else "yuv420p"

    def encode_filters(self) -> str:
        """RGB -> YUV with this matrix and range, and the frames tagged with all four."""
        params = [f"colorspace={self.matrix if self.matrix in _SCALE_MATRIX else 'smpte170m'}", f"range={self.range}"]
        params += [f"color_primaries={self.primaries}"] if self.primaries else []
        params += [f"color_trc={self.transfer}"] if self.transfer else []
        return f"scale=out_color_matrix={self.scale_matrix}:out_range={self.range},setparams={':'.join(params)}"

    def decode_filters(self) -> str:
        """YUV -> 16-bit RGB with this matrix and range."""
        return f"scale=in_color_matrix={self.scale_matrix}:in_range={self.range},format=rgb48le"


def colour_tags(stream: Stream) -> ColourTags:
    """The colour tags and bit depth in a video stream's description (BT.601 limited 8-bit when untagged)."""
    match = _PIXEL_FORMAT.search(stream.description)
    if match is None:
        return ColourTags()
    pixel_format, properties = match.group(1), match.group(2) or ""
    depth = re.search(r"(\d{2})(?:le|be)$", pixel_format)
    tags: dict = {"bit_depth": int(depth.group(1)) if depth else 8, "range": "pc" if pixel_format.startswith("yuvj") else "tv"}
    for token in (t.strip() for t in properties.split(",")):
        if token in ("tv", "pc"):
            tags["range"] = token
        elif "/" in token:  # space/primaries/transfer
            names = [None if n in ("unknown", "reserved") else n for n in token.split("/")]
            if len(names) == 3:
                tags["matrix"] = names[0] or "smpte170m"
                tags["primaries"], tags["transfer"] = names[1], names[2]
        elif token in _SCALE_MATRIX:  # one name: all three tags have the same number
            shared = token in ("bt709", "smpte170m", "bt470bg", "smpte240m")  # ... and the same name
            tags.update(matrix=token, primaries=token if shared else None, transfer=token if shared else None)
    return ColourTags(**tags)


def packet_times(path: str | os.PathLike, ffmpeg: str) -> tuple[Fraction, list[int]] | None:
    """``(time base, sorted packet times)`` of the first video stream, read without decoding.

    None when ffmpeg cannot read the file. The sorted times are the frames' presentation times
    when every packet is one shown frame (the usual case); callers check the count.
    """
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", media_path(path), "-map", "0:v:0",
         "-c", "copy", "-f", "framecrc", "-"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False,
    )
    if result.returncode != 0:
        return None
    base: Fraction | None = None
    times = []
    for line in result.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            base = Fraction(line.split(":", 1)[1].strip())
        elif line and not line.startswith("#"):
            fields = line.split(",")
            if len(fields) >= 3 and fields[2].strip().lstrip("-").isdigit():
                times.append(int(fields[2]))
    return (base, sorted(times)) if base is not None else None


def fps_argument(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


# Audio codecs an MP4/MOV can hold as they are; anything else is re-encoded to AAC there.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
VIDEO_OUTPUT_EXTENSIONS = tuple(_MUXERS)


@dataclass
class AudioSource:
    """Where the audio (and subtitles) of the output come from: a file and a time span."""

    path: Path
    start: float = 0.0  # seconds
    duration: float | None = None  # seconds, None = to the end
    streams: tuple[Stream, ...] = ()


def _stream_args(source: AudioSource, input_index: int, extension: str) -> tuple[list[str], list[str]]:
    """(-map/-c arguments, warnings) that carry the source's audio and subtitles into the output."""
    args: list[str] = []
    notes: list[str] = []
    audio = [s for s in source.streams if s.kind == "audio"]
    subtitles = [s for s in source.streams if s.kind == "subtitle"]
    mp4_like = extension in (".mp4", ".m4v", ".mov")
    if audio:
        args += ["-map", f"{input_index}:a"]
        incompatible = sorted({s.codec for s in audio if s.codec not in _MP4_AUDIO}) if mp4_like else []
        if incompatible:
            args += ["-c:a", "aac", "-b:a", "192k"]
            notes.append(
                f"the audio codec {', '.join(incompatible)} cannot be stored in {extension} as it is, so the audio "
                "is re-encoded to AAC; write a .mkv to keep it unchanged"
            )
        else:
            args += ["-c:a", "copy"]
    if subtitles:
        if not mp4_like:
            args += ["-map", f"{input_index}:s", "-c:s", "copy"]
        elif all(s.codec in _TEXT_SUBTITLES for s in subtitles):
            args += ["-map", f"{input_index}:s", "-c:s", "mov_text"]
        else:
            notes.append(f"bitmap subtitles cannot be stored in {extension} and are left out; write a .mkv to keep them")
    return args, notes


def _source_input_args(source: AudioSource) -> list[str]:
    args = []
    if source.start > 0:
        args += ["-ss", f"{source.start:.6f}"]
    if source.duration is not None:
        args += ["-t", f"{source.duration:.6f}"]
    return args + ["-i", media_path(source.path)]


def _timestamp_expression(ticks: Sequence[int], low: int, high: int) -> str:
    """``setpts`` value of frame N for frames ``[low, high)``: a balanced tree of ``if(lt(N, mid), ...)``.

    Commas are escaped for the filter graph. A flat sum would nest one level per frame, and
    ffmpeg's expression parser stops at 100 levels.
    """
    if high - low == 1:
        return str(ticks[low])
    middle = (low + high) // 2
    return f"if(lt(N\\,{middle})\\,{_timestamp_expression(ticks, low, middle)}\\,{_timestamp_expression(ticks, middle, high)})"


def _x264_args(crf: int, preset: str, colour: ColourTags, timestamps: Sequence[float] | None) -> list[str]:
    # yuv420p H.264 plays everywhere, browsers included; 10-bit sources give High 10 yuv420p10le.
    # RGB -> YUV uses the matrix and range the source was decoded with, and the stream is tagged with
    # them (and the source's primaries and transfer), so players show the colours of the source.
    filters = colour.encode_filters()
    timing: list[str] = []
    if timestamps is not None:
        ticks = [round(t * TIMESTAMP_RATE) for t in timestamps]
        filters = f"settb=1/{TIMESTAMP_RATE},setpts={_timestamp_expression(ticks, 0, len(ticks))}," + filters
        timing = ["-fps_mode", "passthrough", "-enc_time_base:v", f"1/{TIMESTAMP_RATE}"]
    return [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-vf", filters, "-pix_fmt", colour.pixel_format, *timing,
    ]


def _container_args(extension: str) -> list[str]:
    args = ["-f", _MUXERS[extension]]
    if extension in (".mp4", ".m4v", ".mov"):
        args[:0] = ["-movflags", "+faststart"]
    return args


class FfmpegWriter:
    """Encodes RGB frames piped as raw video to H.264, muxing the source's audio back.

    Args:
        ffmpeg: the binary.
        path: the file to write (its extension picks the container: .mp4, .m4v, .mov, .mkv).
        width, height: frame size; odd sizes are padded by one repeated row/column (yuv420p needs
            even sizes).
        fps: exact frame rate; every frame written becomes one output frame, none is added or dropped.
        audio: where to take audio and subtitles from (copied without re-encoding where the container
            allows), or None.
        colour: the source's colour tags and bit depth (BT.601 limited 8-bit by default).
        deep: frames are uint16 (``rgb48le``), not uint8.
        timestamps: each frame's time in seconds from the first (variable frame rate); None: ``n / fps``.
    """

    def __init__(
        self,
        ffmpeg: str,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction,
        *,
        crf: int = 18,
        preset: str = "medium",
        audio: AudioSource | None = None,
        extension: str | None = None,
        colour: ColourTags | None = None,
        deep: bool = False,
        timestamps: Sequence[float] | None = None,
    ) -> None:
        self.path = Path(path)
        extension = (extension or self.path.suffix).lower()
        if extension not in _MUXERS:
            raise VideoError(f"cannot write video {str(path)!r}: use one of {', '.join(_MUXERS)}")
        self.width, self.height, self.deep = width, height, deep
        self.even_width, self.even_height = width + width % 2, height + height % 2
        self.frames = 0
        self.notes: list[str] = []
        cmd = [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb48le" if deep else "rgb24", "-s", f"{self.even_width}x{self.even_height}",
            "-framerate", fps_argument(fps), "-i", "pipe:0",
        ]
        maps = ["-map", "0:v:0"]
        if audio is not None and any(s.kind in ("audio", "subtitle") for s in audio.streams):
            cmd += _source_input_args(audio)
            stream_args, self.notes = _stream_args(audio, 1, extension)
            maps += stream_args
        cmd += maps + _x264_args(crf, preset, colour or ColourTags(), timestamps)
        cmd += _container_args(extension) + [media_path(self.path)]
        self._log = tempfile.TemporaryFile()
        # A session of its own: Ctrl-C in the terminal reaches this process only, which then stops
        # ffmpeg itself and removes what it was writing.
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True
        )

    def _error(self, what: str) -> FfmpegError:
        self._log.seek(0)
        tail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-8:]
        return FfmpegError(f"ffmpeg failed while {what}: " + (" | ".join(tail) or f"exit status {self._proc.returncode}"))

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(height, width, 3)`` RGB frame (uint8, or uint16 for a ``deep`` writer)."""
        if frame.shape[:2] != (self.height, self.width):
            raise VideoError(
                f"frame {self.frames} is {frame.shape[1]}x{frame.shape[0]}, but the video is {self.width}x{self.height}; "
                "every frame must have the same size"
            )
        if (self.even_width, self.even_height) != (self.width, self.height):
            frame = np.pad(frame, ((0, self.even_height - self.height), (0, self.even_width - self.width), (0, 0)), mode="edge")
        if self.deep:
            frame = frame.astype("<u2", copy=False)  # rgb48le
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            self._proc.wait()
            raise self._error(f"encoding frame {self.frames}") from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file; raises :class:`FfmpegError` if ffmpeg failed."""
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            pass
        code = self._proc.wait()
        try:
            if code != 0:
                raise self._error("finishing the video")
        finally:
            self._log.close()

    def abort(self) -> None:
        """Stop ffmpeg without finishing the file."""
        self._proc.kill()
        self._proc.wait()
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            pass
        self._log.close()


def _concat_listing(segments: Sequence[Path], durations: Sequence[float] | None) -> str:
    """An ffconcat listing; ``duration`` lines fix where each segment starts (variable frame rates)."""
    lines = ["ffconcat version 1.0"]
    for k, segment in enumerate(segments):
        escaped = media_path(segment).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
        if durations is not None:
            lines.append(f"duration {durations[k]:.6f}")
    return "\n".join(lines) + "\n"


def concat_segments(
    ffmpeg: str, segments: Sequence[Path], path: Path, *, audio: AudioSource | None = None,
    extension: str | None = None, durations: Sequence[float] | None = None,
) -> list[str]:
    """Join H.264 segments into ``path`` without re-encoding (concat demuxer), muxing audio back.

    ``durations`` (seconds) place each segment after the previous one; without, each file's own
    duration does. Returns notes (warnings) about the audio and subtitles.
    """
    extension = (extension or path.suffix).lower()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        listing.write(_concat_listing(segments, durations))
    try:
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing.name]
        maps = ["-map", "0:v:0"]
        notes: list[str] = []
        if audio is not None and any(s.kind in ("audio", "subtitle") for s in audio.streams):
            cmd += _source_input_args(audio)
            stream_args, notes = _stream_args(audio, 1, extension)
            maps += stream_args
        cmd += maps + ["-c:v", "copy"] + _container_args(extension) + [media_path(path)]
        result = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
            start_new_session=True,
        )
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-8:]
            raise FfmpegError("ffmpeg failed while joining the parts: " + " | ".join(tail))
        return notes
    finally:
        os.unlink(listing.name)
