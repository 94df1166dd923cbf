"""--backend onnxruntime: the same outputs as torch through the same translator, an export cache,
.onnx files from `i2i export`, and the options the graph cannot honour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from i2i.checkpoint import GeneratorInfo, load_generator, save_generator
from i2i.cli import main
from i2i.data.io import read_image, write_image
from i2i.errors import ModelError
from i2i.inference.translator import Translator
from i2i.models import create_model
from test_translator import photo

pytest.importorskip("onnxruntime")

from i2i.inference import onnx_backend  # noqa: E402 - after the skip: it needs onnxruntime to run
from i2i.inference.onnx_backend import OnnxGenerator, load_onnx_translator, onnx_cache_path  # noqa: E402

SR_KWARGS = dict(num_feat=4, num_conv=1, scale=2)
RESNET_KWARGS = dict(base_channels=4, num_blocks=1, norm="instance")  # size multiple 4, value range [-1, 1]


@pytest.fixture(autouse=True, scope="module")
def own_cache(tmp_path_factory):
    """One export cache for the module: the same seeded weights are exported once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("I2I_HOME", str(tmp_path_factory.mktemp("home")))
        yield


def save(path: Path, name: str, kwargs: dict, **info) -> Path:
    torch.manual_seed(0)
    save_generator(path, create_model(name, **kwargs), GeneratorInfo(model=name, kwargs=kwargs, **info))
    return path


@pytest.fixture
def upscaler(tmp_path) -> Path:
    return save(tmp_path / "sr.safetensors", "srvgg_compact", SR_KWARGS, value_range=(0.0, 1.0), scale=2, task="srgan")


@pytest.fixture
def resnet(tmp_path) -> Path:
    return save(tmp_path / "resnet.safetensors", "resnet", RESNET_KWARGS, task="cyclegan")


def levels_apart(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize("options", [{}, {"tile": 16, "tile_overlap": 4, "batch_size": 3}])
def test_onnxruntime_matches_torch_whole_tiled_and_batched(upscaler, options):
    images = [photo(21, 30), photo(21, 30), photo(13, 9, channels=1), np.dstack([photo(17, 12), photo(17, 12, 1)])]
    torch_side = Translator.from_file(upscaler, **options)
    ort_side = load_onnx_translator(upscaler, **options)
    assert isinstance(ort_side.module, OnnxGenerator)
    assert ort_side.bytes_per_pixel() == torch_side.bytes_per_pixel()  # planned with the torch network
    for want, got in zip(torch_side.translate_images(images), ort_side.translate_images(images)):
        assert levels_apart(want, got) <= 1
    sixteen = photo(10, 11, dtype=np.uint16)
    assert levels_apart(torch_side.translate_image(sixteen), ort_side.translate_image(sixteen)) <= 257


def test_onnxruntime_matches_torch_for_a_padded_translator(resnet):
    image = photo(19, 26)  # not a multiple of the ResNet's 4: padded and cropped back
    want = Translator.from_file(resnet).translate_image(image)
    ort_side = load_onnx_translator(resnet)
    assert levels_apart(want, ort_side.translate_image(image)) <= 1
    copy = ort_side.to_device("cpu")  # what --devices does: its own session
    assert copy.module.session is not ort_side.module.session and copy.module.memory_probe is not None
    assert levels_apart(want, copy.translate_image(image)) <= 1


def test_the_export_is_cached_by_weights_and_opset(upscaler, tmp_path, monkeypatch):
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    exports = []
    export = onnx_backend.export_generator
    monkeypatch.setattr(onnx_backend, "export_generator", lambda *a, **k: exports.append(k["opset"]) or export(*a, **k))
    load_onnx_translator(upscaler)
    load_onnx_translator(upscaler)  # the second run reuses the file
    assert exports == [17]
    module, info = load_generator(upscaler)
    path = onnx_cache_path(module, info)
    assert path.is_file() and path.parent == tmp_path / "home" / "onnx"
    assert onnx_cache_path(module, info, opset=18) != path
    with torch.no_grad():
        next(module.parameters()).add_(0.01)
    assert onnx_cache_path(module, info) != path  # other weights, another export


def test_an_exported_onnx_file_runs_from_the_command_line(upscaler, tmp_path):
    source = tmp_path / "in.png"
    write_image(source, photo(15, 22))
    runner = CliRunner()
    exported = runner.invoke(main, ["export", "-m", str(upscaler), "-o", str(tmp_path / "sr.onnx")])
    assert exported.exit_code == 0, exported.output
    for args, name in (([], "torch.png"), (["--backend", "onnxruntime", "-m", str(tmp_path / "sr.onnx")], "ort.png")):
        result = runner.invoke(main, ["upscale", "-m", str(upscaler), *args, str(source), str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert levels_apart(read_image(tmp_path / "torch.png"), read_image(tmp_path / "ort.png")) <= 1


def test_video_frames_run_through_onnxruntime(upscaler, tmp_path):
    frames = tmp_path / "frames"
    for index in range(3):
        write_image(frames / f"f{index}.png", photo(12 + index, 10))
    runner = CliRunner()
    for backend in ("torch", "onnxruntime"):
        result = runner.invoke(main, ["video", str(frames), str(tmp_path / backend), "-m", str(upscaler),
                                      "--backend", backend])
        assert result.exit_code == 0, result.output
    for index in range(3):
        want, got = (read_image(tmp_path / backend / f"f{index}.png") for backend in ("torch", "onnxruntime"))
        assert want.shape == (2 * (12 + index), 20, 3) and levels_apart(want, got) <= 1


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp16"], "do not support fp16"),
    (["--compile"], "--compile is for --backend torch"),
    (["--norm-mode", "train"], "--norm-mode eval"),
])
def test_what_the_graph_cannot_do_is_one_line(upscaler, tmp_path, args, message):
    source = tmp_path / "in.png"
    write_image(source, photo(8, 8))
    result = CliRunner().invoke(main, ["upscale", "-m", str(upscaler), "--backend", "onnxruntime", *args,
                                       str(source), str(tmp_path / "out.png")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's notes on its older ONNX exporter
def test_an_onnx_file_without_a_description_is_refused(tmp_path):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 8, 8),), str(plain), dynamo=False,
                      input_names=["input"], output_names=["output"])
    with pytest.raises(ModelError, match="no i2i description"):
        load_onnx_translator(plain)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        load_onnx_translator(broken)
    result = CliRunner().invoke(main, ["upscale", "-m", str(plain), str(tmp_path), str(tmp_path / "o")])
    assert result.exit_code == 2 and "runs with --backend onnxruntime" in result.output  # the torch backend
