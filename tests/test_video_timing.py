"""Videos keep their time and colour: variable frame rates, audio sync, colour tags, 10-bit sources."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from i2i.data.io import write_image
from i2i.errors import UsageError
from i2i.inference.ffmpeg import ColourTags, Stream, colour_tags, probe_streams
from i2i.inference.translator import Translator
from i2i.inference import video_segments
from i2i.inference.video import VideoOptions, translate_frames, translate_video
from test_folder import sr_from_file  # noqa: F401 - fixture
from test_translator import photo, tiny_sr
from test_video import FFMPEG, assert_same_frames_in_order, decode, mean_diff, needs_ffmpeg, run, video_stream, ffmpeg_info

# A variable-rate timeline: bursts and gaps, with a frame at exactly 2.0 s (the 12 fps average
# would put frame 8 at 0.67 s).
VFR_TIMES = [0.0, 0.1, 0.2, 0.3, 1.0, 1.05, 1.1, 1.5, 2.0, 2.04, 2.08, 2.5]
VFR_END = 2.6
BEEP_AT = 1.5  # seconds: the only sound in the clip's audio, to check that it stays in sync


def frame_times(path: Path) -> list[float]:
    """Each decoded frame's presentation time, as ffmpeg's showinfo filter reports it."""
    text = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-vf", "showinfo", "-fps_mode", "passthrough",
         "-f", "null", "-"], capture_output=True, text=True,
    ).stderr
    return [float(t) for t in re.findall(r"pts_time:\s*(-?[\d.]+)", text)]


def beep_time(path: Path) -> float:
    """When the audio stops being silent (the beep's start), in seconds from the file's start."""
    text = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-af", "silencedetect=noise=-30dB:d=0.05",
         "-f", "null", "-"], capture_output=True, text=True,
    ).stderr
    return float(re.search(r"silence_end: ([\d.]+)", text).group(1))


def audio_seconds(path: Path) -> float:
    """The audio stream's length, from decoding it."""
    text = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"], capture_output=True, text=True
    ).stderr
    hours, minutes, seconds = re.findall(r"time=(\d+):(\d+):([\d.]+)", text)[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def make_vfr_clip(folder: Path, times=VFR_TIMES, end=VFR_END) -> Path:
    """A clip whose frames are shown at ``times`` (an ffconcat of stills with durations), with a
    silent AAC track holding one beep at BEEP_AT; every frame a different crop of a photo."""
    folder.mkdir(parents=True, exist_ok=True)
    base = photo(48, 64 + 8 * len(times))
    lines = ["ffconcat version 1.0"]
    for i, (start, stop) in enumerate(zip(times, [*times[1:], end])):
        write_image(folder / f"still_{i}.png", np.ascontiguousarray(base[:, i * 8 : i * 8 + 64]))
        lines += [f"file still_{i}.png", "option framerate 1000", f"duration {stop - start:.6f}"]
    lines += [f"file still_{len(times) - 1}.png", "option framerate 1000"]  # the concat demuxer needs the last one twice
    (folder / "stills.txt").write_text("\n".join(lines) + "\n")
    clip = folder / "vfr.mp4"
    beep = f"aevalsrc='if(between(t,{BEEP_AT},{BEEP_AT + 0.3}),0.5*sin(2*PI*440*t),0)':s=48000:d={end}"
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(folder / "stills.txt"), "-f", "lavfi",
         "-i", beep, "-map", "0:v", "-map", "1:a", "-fps_mode", "passthrough", "-enc_time_base", "1/90000",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(end), str(clip)],
        check=True,
    )
    return clip


@pytest.fixture
def vfr_clip(tmp_path) -> Path:
    if FFMPEG is None:
        pytest.skip("no ffmpeg binary (pip install imageio-ffmpeg)")
    return make_vfr_clip(tmp_path / "source")


# ----------------------------------------------------------------------------- variable frame rate


@needs_ffmpeg
def test_variable_frame_rate_frames_keep_their_times_and_the_audio_stays_in_sync(vfr_clip, tmp_path, sr_from_file,
                                                                                  monkeypatch):
    source_times = frame_times(vfr_clip)
    assert np.allclose(source_times, VFR_TIMES, atol=0.001)  # the clip really is variable-rate
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", "0.25")  # 3-frame segments: the joins must keep the times
    out = tmp_path / "out.mp4"
    result = run("video", vfr_clip, out, "-m", "x2", "--preset", "ultrafast")
    assert "12 frames" in result.output and "audio copied" in result.output
    times = frame_times(out)
    assert len(times) == len(source_times)
    assert max(abs(a - b) for a, b in zip(times, source_times)) < 0.001, (times, source_times)
    assert_same_frames_in_order(decode(out), decode(vfr_clip), scale=2)
    assert abs(beep_time(out) - beep_time(vfr_clip)) < 0.03
    assert abs(audio_seconds(out) - VFR_END) < 0.05
    assert not out.with_name("out.mp4.parts").exists() and not list(tmp_path.glob(".*"))


@needs_ffmpeg
def test_a_range_of_a_variable_rate_video_starts_at_zero_with_its_audio(vfr_clip, tmp_path):
    source_times = frame_times(vfr_clip)
    out = tmp_path / "range.mp4"
    options = VideoOptions(start=4, end=10, preset="ultrafast", progress=False, segment_seconds=0.25)
    report = translate_video(tiny_sr(), vfr_clip, out, options)
    assert report.frames == 6 and report.audio
    expected = [t - source_times[4] for t in source_times[4:10]]
    assert np.allclose(frame_times(out), expected, atol=0.001)
    assert abs(beep_time(out) - (BEEP_AT - source_times[4])) < 0.03  # the beep moves with the cut
    assert abs(audio_seconds(out) - (source_times[10] - source_times[4])) < 0.05


@needs_ffmpeg
def test_times_in_a_range_name_the_frames_shown_then(vfr_clip, tmp_path, sr_from_file):
    source_times = frame_times(vfr_clip)
    out = tmp_path / "times.mp4"
    # 1 s is frame 4 (the 12 / 2.6 s average rate would say frame 5), 2.05 s is just before frame 10 (2.08 s).
    result = run("video", vfr_clip, out, "-m", "x2", "--start", "1s", "--end", "0:02.05", "--preset", "ultrafast")
    assert "6 frames" in result.output
    assert np.allclose(frame_times(out), [t - source_times[4] for t in source_times[4:10]], atol=0.001)
    assert_same_frames_in_order(decode(out), decode(vfr_clip)[4:10], scale=2)
    frames = tmp_path / "frames"  # a frame folder takes the same frames
    run("video", vfr_clip, frames, "-m", "x2", "--start", "1s", "--end", "0:02.05")
    assert sorted(p.name for p in frames.iterdir()) == [f"frame_{i:06d}.png" for i in range(4, 10)]


@needs_ffmpeg
def test_a_constant_rate_video_stays_frame_exact(tmp_path):
    clip = tmp_path / "cfr.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001:duration=0.5",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    translate_video(tiny_sr(), clip, out, VideoOptions(preset="ultrafast", progress=False, segment_seconds=0.2))
    times = frame_times(out)
    assert len(times) == 15 and "29.97 fps" in video_stream(ffmpeg_info(out))
    assert max(abs(t - i * 1001 / 30000) for i, t in enumerate(times)) < 1e-4


# ----------------------------------------------------------------------------- colour tags and depth


@pytest.mark.parametrize("description, expected", [
    ("(High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9]",
     ColourTags("bt709", "tv", "bt709", "bt709", 8)),
    ("(High 10) (avc1 / 0x31637661), yuv420p10le(tv, bt709/unknown/unknown, progressive), 64x48",
     ColourTags("bt709", "tv", None, None, 10)),
    ("(Main 10), yuv420p10le(pc, bt2020nc/bt2020/smpte2084), 3840x2160", ColourTags("bt2020nc", "pc", "bt2020", "smpte2084", 10)),
    ("(Constrained Baseline) (avc1 / 0x31637661), yuvj420p(pc, progressive), 64x48", ColourTags("smpte170m", "pc", None, None, 8)),
    ("(Simple Profile) (mp4v / 0x7634706D), yuv420p, 64x48 [SAR 1:1 DAR 4:3]", ColourTags()),  # untagged: BT.601
])
def test_colour_tags_are_read_from_ffmpegs_stream_line(description, expected):
    tags = colour_tags(Stream(0, "video", "h264", description))
    assert tags == expected
    assert tags.pixel_format == ("yuv420p10le" if expected.bit_depth > 8 else "yuv420p")
    filters = tags.encode_filters()  # converted with the matrix and range it is tagged with
    assert f"out_range={expected.range}" in filters and f"colorspace={expected.matrix}:range={expected.range}" in filters


def test_the_segment_length_comes_from_the_environment_and_must_be_positive(monkeypatch):
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", "2.5")
    assert VideoOptions().segment_seconds == 2.5 and VideoOptions(segment_seconds=4).segment_seconds == 4
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", "soon")
    with pytest.raises(UsageError, match="I2I_VIDEO_SEGMENT_SECONDS"):
        VideoOptions()
    with pytest.raises(UsageError, match="positive"):
        VideoOptions(segment_seconds=0)


def _tagged_clip(path: Path, pixel_format: str, matrix: str, primaries: str, transfer: str, colour_range: str) -> Path:
    """A short clip of a photo, converted to YUV with ``matrix``/``range`` and tagged with all four."""
    still = path.with_suffix(".png")
    write_image(still, photo(48, 64))
    params = f"colorspace={matrix}:color_primaries={primaries}:color_trc={transfer}:range={colour_range}"
    scale_matrix = {"bt709": "bt709", "smpte170m": "smpte170m", "bt2020nc": "bt2020"}[matrix]
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-loop", "1", "-framerate", "10", "-i", str(still), "-t", "0.4", "-vf",
         f"format=rgb48le,scale=out_color_matrix={scale_matrix}:out_range={colour_range},setparams={params}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pixel_format, str(path)],
        check=True,
    )
    return path


def _ffmpeg_rgb48(path: Path, matrix: str, colour_range: str) -> np.ndarray:
    """The first frame as 16-bit RGB, converted with the given matrix and range."""
    data = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1", "-vf",
         f"scale=in_color_matrix={matrix}:in_range={colour_range},format=rgb48le", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(data, "<u2").reshape(-1, 3)


@needs_ffmpeg
@pytest.mark.parametrize("matrix, primaries, transfer, colour_range, shown", [
    ("bt709", "bt709", "bt709", "tv", "(tv, bt709, progressive)"),
    ("bt2020nc", "bt2020", "smpte2084", "pc", "(pc, bt2020nc/bt2020/smpte2084, progressive)"),
])
def test_colour_tags_are_carried_to_the_output(tmp_path, matrix, primaries, transfer, colour_range, shown):
    clip = _tagged_clip(tmp_path / "tagged.mp4", "yuv420p", matrix, primaries, transfer, colour_range)
    assert shown in video_stream(ffmpeg_info(clip))
    out = tmp_path / "out.mp4"
    translate_video(tiny_sr(), clip, out, VideoOptions(preset="ultrafast", crf=10, progress=False))
    stream = video_stream(ffmpeg_info(out))
    assert "420p(" in stream and shown in stream, stream  # yuvj420p is how ffmpeg names full-range 4:2:0
    # Read back as the tags say, the output has the source's colours (the x2 model only repeats pixels).
    scale = {"bt709": "bt709", "bt2020nc": "bt2020"}[matrix]
    source = _ffmpeg_rgb48(clip, scale, colour_range).reshape(48, 64, 3).astype(np.float32) / 257
    output = _ffmpeg_rgb48(out, scale, colour_range).reshape(96, 128, 3)[::2, ::2].astype(np.float32) / 257
    assert np.abs(source.mean(axis=(0, 1)) - output.mean(axis=(0, 1))).max() < 2.0
    assert mean_diff(source, output) < 6.0


def _can_encode_10_bit() -> bool:
    text = subprocess.run([FFMPEG, "-hide_banner", "-h", "encoder=libx264"], capture_output=True, text=True).stdout
    return "yuv420p10le" in text


@needs_ffmpeg
def test_a_10_bit_source_goes_through_the_model_at_16_bits_and_stays_10_bit(tmp_path, monkeypatch):
    if not _can_encode_10_bit():
        pytest.skip("this ffmpeg's libx264 cannot encode 10-bit (yuv420p10le)")
    clip = _tagged_clip(tmp_path / "deep.mp4", "yuv420p10le", "bt709", "bt709", "bt709", "tv")
    assert colour_tags(next(s for s in probe_streams(clip, FFMPEG) if s.kind == "video")).bit_depth == 10
    translator = tiny_sr()
    seen = []
    original = translator.translate_images

    def spy(images):
        seen.extend(image.dtype for image in images)
        return original(images)

    monkeypatch.setattr(translator, "translate_images", spy)
    out = tmp_path / "out.mp4"
    translate_video(translator, clip, out, VideoOptions(preset="ultrafast", crf=4, progress=False))
    assert seen and all(dtype == np.uint16 for dtype in seen)
    stream = video_stream(ffmpeg_info(out))
    assert "High 10" in stream and "yuv420p10le(tv, bt709, progressive)" in stream, stream
    source = _ffmpeg_rgb48(clip, "bt709", "tv").reshape(48, 64, 3)
    output = _ffmpeg_rgb48(out, "bt709", "tv").reshape(96, 128, 3)[::2, ::2]
    assert len(np.unique(output[..., 1] >> 6)) > len(np.unique(output[..., 1] >> 8))  # finer than 8-bit steps
    assert mean_diff(source, output) < 257  # within one 8-bit level on average


def _deep_frames(folder: Path, count: int = 3) -> Path:
    """16-bit frames of a photo with levels between the 8-bit steps."""
    base = photo(48, 64).astype(np.uint16) * 257
    for i in range(count):
        write_image(folder / f"f_{i}.png", base + np.uint16(64 * (i + 1)))
    return folder


@needs_ffmpeg
def test_16_bit_frames_make_a_10_bit_video_or_say_why_not(tmp_path, monkeypatch):
    if not _can_encode_10_bit():
        pytest.skip("this ffmpeg's libx264 cannot encode 10-bit (yuv420p10le)")
    frames = _deep_frames(tmp_path / "frames")
    out = tmp_path / "out.mp4"
    translate_frames(tiny_sr(), frames, out, VideoOptions(fps=10, preset="ultrafast", crf=4, progress=False))
    stream = video_stream(ffmpeg_info(out))
    assert "High 10" in stream and "yuv420p10le" in stream, stream
    output = _ffmpeg_rgb48(out, "smpte170m", "tv").reshape(96, 128, 3)
    assert len(np.unique(output[..., 1] >> 6)) > len(np.unique(output[..., 1] >> 8))  # finer than 8-bit steps
    # An ffmpeg without 10-bit H.264, and OpenCV's writer: 8-bit, with one warning line saying so.
    monkeypatch.setattr(video_segments, "encodes_10_bit", lambda ffmpeg: False)
    with pytest.warns(RuntimeWarning, match="16-bit frames are written as 8-bit H.264"):
        translate_frames(tiny_sr(), frames, tmp_path / "eight.mp4", VideoOptions(fps=10, preset="ultrafast",
                                                                                progress=False))
    assert "yuv420p(" in video_stream(ffmpeg_info(tmp_path / "eight.mp4"))
    with pytest.warns(RuntimeWarning) as caught:  # also the warning that OpenCV drops the audio
        translate_frames(tiny_sr(), frames, tmp_path / "cv.mp4", VideoOptions(fps=10, ffmpeg=None, progress=False))
    assert sum("16-bit frames are written as 8-bit: OpenCV" in str(w.message) for w in caught) == 1
