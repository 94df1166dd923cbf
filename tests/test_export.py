"""Export to ONNX (checked in onnxruntime against PyTorch) and TorchScript, with dynamic sizes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from i2i.checkpoint import GeneratorInfo, save_generator
from i2i.cli import main
from i2i.inference.export import export_generator
from i2i.inference.translator import Translator
from i2i.models import create_model
from test_translator import PixelSR, sr_info

KWARGS = dict(base_channels=4, num_blocks=2, norm="instance")  # instance norm: per-image statistics


@pytest.fixture
def generator_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "gen.safetensors"
    save_generator(path, create_model("resnet", **KWARGS), GeneratorInfo(model="resnet", kwargs=KWARGS, task="cyclegan"))
    return path


def reference(translator: Translator, x: torch.Tensor) -> np.ndarray:
    return translator.translate_tensor(x).numpy()


def test_onnx_matches_pytorch_at_any_size(generator_file, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx_path = export_generator(generator_file, tmp_path / "gen.onnx", format="onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    translator = Translator.from_file(generator_file)
    for shape in [(1, 3, 37, 53), (2, 3, 64, 48)]:  # odd sizes (padded inside the graph) and a batch
        x = torch.rand(*shape) * 2 - 1
        (got,) = session.run(None, {"input": x.numpy()})
        want = reference(translator, x)
        assert got.shape == want.shape == shape
        assert np.abs(got - want).max() < 1e-4
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["i2i"])["model"] == "resnet"


def test_onnx_sr_export_has_dynamic_size_and_scale(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model, info = PixelSR(mix=True), sr_info(scale=2)
    path = export_generator(None, tmp_path / "sr.onnx", model=model, info=info)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 19, 30)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (1, 3, 38, 60) and np.abs(got - want).max() < 1e-5


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_torchscript_matches_pytorch_at_a_new_size(generator_file, tmp_path):
    path = export_generator(generator_file, tmp_path / "gen.pt", format="torchscript")
    extra = {"i2i.json": ""}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["i2i.json"])["kwargs"]["base_channels"] == 4
    x = torch.rand(1, 3, 29, 41) * 2 - 1
    with torch.no_grad():
        got = scripted(x).numpy()
    assert np.abs(got - reference(Translator.from_file(generator_file), x)).max() < 1e-4


def test_export_command_writes_next_to_the_model_and_reports_mistakes(generator_file, tmp_path):
    pytest.importorskip("onnx")
    result = CliRunner().invoke(main, ["export", "--model", str(generator_file)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "gen.onnx").is_file() and "gen.onnx" in result.output
    result = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "missing.safetensors")])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["export", "--model", str(generator_file), "--format", "tflite"])
    assert result.exit_code == 2 and "tflite" in result.output


def test_default_export_path_of_names_and_urls_lands_in_the_current_folder(tmp_path) -> None:
    from i2i.inference.export import default_export_path

    generator = tmp_path / "gen.safetensors"
    generator.write_bytes(b"")
    assert default_export_path(generator, "onnx") == tmp_path / "gen.onnx"
    assert default_export_path(tmp_path, "onnx") == tmp_path / "generator.onnx"
    assert default_export_path("RealESRGAN_x4plus", "onnx") == Path("RealESRGAN_x4plus.onnx")
    assert default_export_path("cyclegan/horse2zebra", "onnx") == Path("horse2zebra.onnx")
    assert default_export_path("https://example.org/m/net.pth?download=1", "onnx") == Path("net.onnx")
    assert default_export_path("hf://org/repo/sub/net.pth", "onnx") == Path("net.onnx")
