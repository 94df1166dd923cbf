"""The inference layers and their seams: runner, planner, adapter, parts on several devices, option
checks and the command line's one-line errors."""
from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from conftest import run_cli as run
from i2i.data.io import write_image
from i2i.device import PRECISIONS, mps_available
from i2i.errors import DataError, DeviceError, I2IError, UsageError, VideoError
from i2i.inference.adapter import ImageAdapter
from i2i.inference.pipeline import PartStopped, run_parts
from i2i.inference.planner import InferenceMemoryError, MemoryPlanner, Plan
from i2i.inference.translator import Translator
from i2i.inference.video import PRESETS, VideoOptions
from test_translator import PixelSR, photo, sr_info, tiny_resnet, tiny_sr



def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


# ----------------------------------------------------------------------------- devices on the command line


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "in.png"
    write_image(path, photo(8, 8))
    return path


def test_an_unknown_device_is_one_line_naming_the_option(image, tmp_path):
    line = one_line_error(run("upscale", "--device", "foo", image, tmp_path / "out.png", code=2))
    assert "--device" in line and "foo" in line


@pytest.mark.skipif(mps_available(), reason="this machine has Apple's MPS backend")
def test_mps_where_there_is_none_is_one_line_naming_the_option(image, tmp_path):
    line = one_line_error(run("upscale", "--device", "mps", image, tmp_path / "out.png", code=2))
    assert "--device" in line and "mps" in line.lower()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_lists_are_checked_before_the_model_is_loaded(image, tmp_path):
    line = one_line_error(run("video", image, tmp_path / "out.mp4", "-m", "no-such-model", "--devices", "0,1", code=2))
    assert "--devices" in line and "CUDA" in line


def test_the_cli_choices_match_the_library():
    from i2i import cli_infer

    assert cli_infer._PRECISIONS == PRECISIONS
    assert cli_infer._PRESETS == PRESETS


# ----------------------------------------------------------------------------- option values


def test_translator_option_mistakes_name_the_option():
    with pytest.raises(UsageError, match="--tile-overlap"):
        tiny_sr(tile=32, tile_overlap=20)
    with pytest.raises(UsageError, match="--batch-size"):
        tiny_sr(batch_size=0)
    with pytest.raises(DeviceError, match="--precision"):
        tiny_sr(precision="fp8")
    with pytest.raises(DeviceError, match="--device"):
        Translator(PixelSR(), sr_info(), device="foo")


def test_video_options_are_checked_when_built():
    assert VideoOptions(ext="jpg").ext == ".jpg"
    for bad in ({"crf": 60}, {"preset": "quick"}, {"ext": "gif"}, {"quality": 0}, {"fps": 0}):
        with pytest.raises(UsageError):
            VideoOptions(**bad)
    with pytest.raises(AttributeError):
        VideoOptions().crf = 20  # frozen: one options object, passed down unchanged


def test_bad_image_arrays_are_data_errors():
    with pytest.raises(DataError, match="uint8 or uint16"):
        tiny_sr().translate_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DataError, match="empty"):
        tiny_sr().translate_image(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(TypeError):  # a programming error, not the user's
        tiny_sr().translate_image([[0]])


# ----------------------------------------------------------------------------- the layers


def test_the_adapter_round_trips_every_level_of_both_depths():
    adapter = ImageAdapter(3, 3, (-1.0, 1.0))
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        levels = np.linspace(0, top, 3 * 64, dtype=np.float64).round().astype(dtype).reshape(1, 8, 8, 3)
        x = adapter.to_device(levels, torch.device("cpu"))
        assert x.min() >= -1 and x.max() <= 1
        assert np.array_equal(adapter.to_levels(x, dtype), levels)


def test_the_planner_halves_the_batch_then_the_tile_then_gives_up():
    planner = MemoryPlanner(device=torch.device("cpu"), size_multiple=4, batch_size=4, tile=None, tile_overlap=8,
                            memory_budget=None, measure=lambda side: 0.0, io_bytes_per_pixel=1.0)
    assert planner.plan(2, 40, 40) == Plan(None, 2, 0)  # small: whole images, two at once
    with pytest.warns(RuntimeWarning, match="retrying with 1"):
        planner.shrink(Plan(None, 2, 0), 200, 200)
    with pytest.warns(RuntimeWarning, match="--tile 100"):
        planner.shrink(Plan(None, 1, 0), 200, 200)
    assert planner.plan(1, 200, 200) == Plan(100, 1, 8)
    with pytest.raises(InferenceMemoryError, match="even with 32-pixel tiles") as caught:
        planner.shrink(Plan(32, 1, 8), 200, 200)
    assert isinstance(caught.value, I2IError) and isinstance(caught.value, MemoryError)


def test_the_runner_keeps_the_model_replaceable_and_precision_resolved_for_inference():
    translator = tiny_resnet()
    assert translator.runner.amp_dtype is None  # auto is fp32 off CUDA
    seen = []
    inner = translator.model
    translator.model = lambda x: seen.append(x.shape) or inner(x)
    translator.translate_image(photo(12, 10))
    assert seen == [(1, 3, 12, 12)]  # padded to the ResNet's multiple of 4
    assert translator.to_device("cpu").model is not inner  # a copy has its own module


def test_an_out_of_memory_error_that_cannot_be_recovered_is_one_line_on_the_command_line(tmp_path, monkeypatch):
    class AlwaysOOM(PixelSR):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    frames = tmp_path / "frames"
    for i in range(2):
        write_image(frames / f"{i}.png", photo(40, 40))
    monkeypatch.setattr(Translator, "from_file", staticmethod(
        lambda path, direction=None, **options: Translator(AlwaysOOM(), sr_info(), **options)))
    result = run("video", frames, tmp_path / "out.mp4", "-m", "x", "--fps", "5", "--no-ffmpeg", code=1)
    assert "Error: out of memory" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.mp4").exists()


def test_a_file_in_the_way_of_an_output_folder_is_one_line(tmp_path):
    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (16, 16))
    for _ in range(2):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()
    (tmp_path / "file").write_text("x")
    from i2i.inference.video import translate_video

    with pytest.raises(VideoError, match="in the way"):
        translate_video(tiny_sr(), clip, tmp_path / "file" / "frames", VideoOptions(progress=False))


# ----------------------------------------------------------------------------- parts on several devices


def test_run_parts_returns_in_order_and_the_first_real_error_wins():
    assert run_parts(3, lambda k, stop: k * 10) == [0, 10, 20]
    started = threading.Barrier(2)

    def work(k: int, stop: threading.Event) -> int:
        started.wait()
        if k == 0:
            raise ValueError("part 0 failed")
        stop.wait(5)
        raise PartStopped("stopped because another part failed")

    with pytest.raises(ValueError, match="part 0 failed"):
        run_parts(2, work)


def test_inference_does_not_import_training_or_data_sets():
    code = (
        "import sys, i2i.inference.video, i2i.inference.folder, i2i.inference.export, i2i.cli_infer; "
        "bad = [m for m in ('i2i.trainer', 'i2i.data.datasets', 'i2i.tasks') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
