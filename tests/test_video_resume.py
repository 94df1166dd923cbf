"""A video output is written in closed segments: interrupted runs resume, processes share the work."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from i2i.checkpoint import GeneratorInfo, save_generator
from i2i.errors import VideoError
from i2i.inference import video_pipeline
from i2i.inference.video import VideoOptions, translate_video
from i2i.registry import create_model
from test_folder import sr_from_file  # noqa: F401 - fixture
from test_translator import photo, tiny_sr
from test_video import FFMPEG, assert_same_frames_in_order, decode, ffmpeg_info, mean_diff, needs_ffmpeg, run
from test_video_timing import frame_times

pytestmark = needs_ffmpeg

FRAMES, FPS, SEGMENT = 12, 12, 3  # 12 frames at 12 fps in segments of 3 frames: four segments
SEGMENT_SECONDS = SEGMENT / FPS
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def clip(tmp_path) -> Path:
    """12 frames of 64x48 at 12 fps (each a different crop of a photo) with a 1 s sine track."""
    folder = tmp_path / "stills"
    folder.mkdir()
    base = photo(48, 64 + 4 * FRAMES)
    raw = np.stack([base[:, i * 4 : i * 4 + 64] for i in range(FRAMES)])
    path = tmp_path / "clip.mp4"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-framerate", str(FPS),
         "-i", "pipe:0", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-map", "0:v", "-map", "1:a",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        input=np.ascontiguousarray(raw).tobytes(), check=True,
    )
    return path


def options(**changes) -> VideoOptions:
    return VideoOptions(**{"preset": "ultrafast", "progress": False, "segment_seconds": SEGMENT_SECONDS, **changes})


def parts_of(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def segment_state(parts: Path) -> dict[str, tuple[int, bytes]]:
    """Each finished segment's modification time and bytes."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(parts.glob("segment_*.mp4"))}


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def stop_after(translator, calls: int, error: BaseException):
    """Make ``translator`` raise ``error`` on its ``calls``-th batch (one frame per batch on the CPU)."""
    original = translator.translate_images
    count = [0]

    def translate(images):
        count[0] += 1
        if count[0] == calls:
            raise error
        return original(images)

    translator.translate_images = translate
    return translator


@pytest.fixture
def join_spy(monkeypatch) -> list[dict[str, tuple[int, bytes]]]:
    """The segments as they are when the join starts (the parts folder is gone afterwards)."""
    seen = []
    original = video_pipeline.join_segments

    def spy(parts, *args, **kwargs):
        seen.append(segment_state(parts.folder))
        return original(parts, *args, **kwargs)

    monkeypatch.setattr(video_pipeline, "join_segments", spy)
    return seen


def check_finished(out: Path, straight: Path) -> None:
    """Every frame once, at its time, with the audio; the same as a run without interruption."""
    assert np.allclose(frame_times(out), [i / FPS for i in range(FRAMES)], atol=1e-4)
    frames, reference = decode(out), decode(straight)
    assert len(frames) == FRAMES
    assert max(mean_diff(a, b) for a, b in zip(frames, reference)) < 1.0
    assert re.search(r"Stream #.*: Audio: aac", ffmpeg_info(out))
    assert not parts_of(out).exists() and not hidden_files(out.parent)


def test_an_interrupted_video_resumes_from_the_first_missing_segment(clip, tmp_path, join_spy):
    straight = tmp_path / "straight.mp4"
    assert translate_video(tiny_sr(), clip, straight, options()).frames == FRAMES
    assert_same_frames_in_order(decode(straight), decode(clip), scale=2)
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match=r"Interrupted at frame (\d+); .*Run the same command again to continue") as caught:
        translate_video(stop_after(tiny_sr(), 10, KeyboardInterrupt()), clip, out, options())
    stopped_at = int(re.search(r"frame (\d+)", str(caught.value)).group(1))
    kept = segment_state(parts_of(out))
    assert len(kept) >= 1 and stopped_at == SEGMENT * len(kept)  # finished segments, no more
    assert not out.exists() and not hidden_files(tmp_path)  # the unfinished segment is gone

    report = translate_video(tiny_sr(), clip, out, options())
    assert report.frames == FRAMES and report.skipped == stopped_at and any("resumed" in n for n in report.notes)
    at_join = join_spy[-1]
    assert len(at_join) == FRAMES // SEGMENT
    assert all(at_join[name] == state for name, state in kept.items())  # kept, not encoded again
    check_finished(out, straight)


def test_on_progress_reports_written_frames_and_counts_kept_segments_as_done(clip, tmp_path):
    seen: list[tuple[int, int]] = []
    out = tmp_path / "out.mp4"
    report_to = options(on_progress=lambda done, total: seen.append((done, total)))
    with pytest.raises(VideoError, match="Interrupted"):
        translate_video(stop_after(tiny_sr(), 8, KeyboardInterrupt()), clip, out, report_to)
    assert 1 <= len(seen) <= 7 and seen == [(done, FRAMES) for done in range(1, len(seen) + 1)]
    seen.clear()
    report = translate_video(tiny_sr(), clip, out, report_to)
    assert report.skipped > 0  # the resumed run starts at the kept frames and ends at every frame
    assert seen == [(done, FRAMES) for done in range(report.skipped + 1, FRAMES + 1)]


def test_a_failing_model_keeps_the_finished_segments_and_another_run_is_refused(clip, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="injected"):
        translate_video(stop_after(tiny_sr(), 7, RuntimeError("injected")), clip, out, options())
    # Frames 0-5 were translated; at most two of them still waited for the encoder.
    assert list(segment_state(parts_of(out)))[:1] == ["segment_000000.mp4"]
    assert not hidden_files(tmp_path) and not out.exists()
    plan = json.loads((parts_of(out) / "plan.json").read_text())
    assert plan["frames"] == [0, FRAMES] and plan["segment_frames"] == SEGMENT
    with pytest.raises(VideoError, match=r"segments of another run \(different crf\).*delete that folder"):
        translate_video(tiny_sr(), clip, out, options(crf=30))
    assert translate_video(tiny_sr(), clip, out, options()).frames == FRAMES
    assert not parts_of(out).exists()


CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from test_translator import tiny_sr
from i2i.inference.translator import Translator
from i2i.cli import main

def from_file(path, *, direction=None, device="cpu", **options):
    translator = tiny_sr(**options)
    original, calls = translator.translate_images, [0]

    def translate(images):
        calls[0] += 1
        if calls[0] == {block_at}:
            print("blocked", flush=True)
            # Busy until the parent's SIGTERM, returning to the interpreter as real work does: the
            # kernel may deliver the signal to another thread, and Python runs its handler in the
            # main thread only when that thread next runs bytecode (an endless lock wait never does).
            while True:
                time.sleep(0.05)
        return original(images)

    translator.translate_images = translate
    return translator

Translator.from_file = staticmethod(from_file)
main(["video", sys.argv[1], sys.argv[2], "-m", "x2", "--preset", "ultrafast"], prog_name="i2i")
"""


def test_sigterm_leaves_only_finished_segments_and_the_same_command_continues(
    clip, tmp_path, sr_from_file, join_spy, monkeypatch
):
    straight = tmp_path / "straight.mp4"
    translate_video(tiny_sr(), clip, straight, options())
    out = tmp_path / "out.mp4"
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", str(SEGMENT_SECONDS))  # the child's and the rerun's
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(TESTS), block_at=10), str(clip), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert child.stdout.readline().strip() == "blocked"  # frames 0-8 are translated
        child.send_signal(signal.SIGTERM)
        _, errors = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 1, errors
    message = re.search(r"Error: Interrupted at frame (\d+);.*Run the same command again to continue", errors)
    assert message and "Traceback" not in errors, errors
    kept = segment_state(parts_of(out))
    assert len(kept) >= 1 and int(message.group(1)) == SEGMENT * len(kept)
    assert not out.exists() and not hidden_files(tmp_path)

    result = run("video", clip, out, "-m", "x2", "--preset", "ultrafast")
    assert f"{FRAMES} frames" in result.output and "resumed" in result.output
    assert all(join_spy[-1][name] == state for name, state in kept.items())
    check_finished(out, straight)


def test_segment_seconds_option_sets_the_segment_length_over_the_environment(
    clip, tmp_path, join_spy, monkeypatch, sr_from_file
):
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", "100")  # one segment, unless the option says otherwise
    out = tmp_path / "out.mp4"
    result = run("video", clip, out, "-m", "x2", "--preset", "ultrafast", "--segment-seconds", SEGMENT_SECONDS)
    assert f"{FRAMES} frames" in result.output
    assert len(join_spy[-1]) == FRAMES // SEGMENT  # segments of 3 frames, not one of 12
    run("video", clip, tmp_path / "env.mp4", "-m", "x2", "--preset", "ultrafast")
    assert len(join_spy[-1]) == 1  # without the option, the variable's 100 s
    refused = run("video", clip, tmp_path / "bad.mp4", "-m", "x2", "--segment-seconds", "0", code=2).output
    assert "--segment-seconds" in refused and not (tmp_path / "bad.mp4").exists()


def test_video_help_explains_timing_colour_resuming_and_torchrun():
    text = " ".join(run("video", "--help").output.split())
    for phrase in ("variable-rate video keeps its timing", "colour tags", "10-bit", "--segment-seconds",
                   "run the same command again", "torchrun --standalone --nproc-per-node 2 -m i2i video"):
        assert phrase in text, phrase


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_processes_each_write_their_segments_and_rank_0_joins(clip, tmp_path, monkeypatch):
    kwargs = dict(in_channels=3, out_channels=3, base_channels=4, num_blocks=1, norm="instance")
    model = tmp_path / "tiny.safetensors"
    save_generator(model, create_model("resnet", **kwargs), GeneratorInfo(model="resnet", kwargs=kwargs))
    monkeypatch.setenv("I2I_VIDEO_SEGMENT_SECONDS", str(SEGMENT_SECONDS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, shared = tmp_path / "single.mp4", tmp_path / "shared.mp4"
    common = ["-m", str(model), "--device", "cpu", "--preset", "ultrafast"]
    run("video", clip, single, *common)
    result = subprocess.run(
        ["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "i2i", "video", str(clip), str(shared), *common],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Rank 0 alone reports, with every frame; rank 1 wrote its segments and printed nothing.
    assert result.stdout.count("Wrote ") == 1 and f"{FRAMES} frames" in result.stdout, result.stdout
    assert "rank 0 joins them" not in result.stdout + result.stderr
    frames, reference = decode(shared), decode(single)
    assert len(frames) == len(reference) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
    assert np.allclose(frame_times(shared), [i / FPS for i in range(FRAMES)], atol=1e-4)
    assert re.search(r"Stream #.*: Audio: aac", ffmpeg_info(shared))
    assert not parts_of(shared).exists() and not hidden_files(tmp_path)
