"""Community model files through spandrel: tiny models built with spandrel's own architecture
classes, saved as plain state_dicts, run through the command line and compared with spandrel."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_cli as run
from i2i.checkpoint import load_generator
from i2i.data.io import read_image, write_image
from i2i.errors import ModelError
from i2i.inference.runner import supported_precision
from i2i.inference.translator import Translator
from test_translator import photo

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.DRUNet import DRUNet  # noqa: E402
from spandrel.architectures.HAT import HAT  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CPU = ("--device", "cpu")  # the comparisons are fp32; auto would pick fp16 on a CUDA machine



@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Tiny spandrel models as community files: SPAN x2 (.pth), SwinIR x2 (fp16 .safetensors, as
    many shared files are; window 4, minimum side 16, no fp16), HAT x2 (.pth; window 4, minimum
    16) and a colour DRUNet denoiser (.pth; scale 1, sizes a multiple of 8, a call convention that
    adds a noise-level channel)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("community")
    torch.manual_seed(0)
    span = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    with warnings.catch_warnings():  # torch.meshgrid's indexing warning, inside SwinIR and HAT
        warnings.simplefilter("ignore")
        swinir = SwinIR(
            img_size=16, in_chans=3, embed_dim=12, depths=[2], num_heads=[2], window_size=4, mlp_ratio=2.0,
            upscale=2, upsampler="pixelshuffledirect",
        )
        hat = HAT(
            img_size=16, embed_dim=12, depths=(1,), num_heads=(2,), window_size=4, compress_ratio=3,
            squeeze_factor=4, mlp_ratio=2.0, upscale=2, num_feat=8,
        )
    drunet = DRUNet(in_nc=4, out_nc=3, nc=[4, 8, 8, 8], nb=2)
    paths = {name: folder / name for name in ("span_x2.pth", "swinir_x2.safetensors", "hat_x2.pth", "drunet.pth")}
    torch.save(hat.state_dict(), paths["hat_x2.pth"])
    torch.save(span.state_dict(), paths["span_x2.pth"])
    save_file({k: v.half() if v.is_floating_point() else v for k, v in swinir.state_dict().items()},
              str(paths["swinir_x2.safetensors"]))
    torch.save(drunet.state_dict(), paths["drunet.pth"])
    return {name.split("_")[0].split(".")[0]: path for name, path in paths.items()}


@pytest.fixture
def photos(tmp_path) -> Path:
    """Crops of a real photo at odd sizes (neither a multiple of 4 nor 8)."""
    folder = tmp_path / "in"
    write_image(folder / "a.png", photo(37, 53))
    write_image(folder / "b.png", photo(45, 30))
    return folder


def spandrel_output(path: Path, image: np.ndarray) -> np.ndarray:
    """What spandrel's own model gives for a uint8 RGB image, as uint8."""
    descriptor = spandrel.ModelLoader().load_from_file(path).eval()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    y = descriptor(x)[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def level_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int32) - b.astype(np.int32))


# ----------------------------------------------------------------------------- loading


def test_files_load_as_described_generators(files):
    model, info = load_generator(files["span"])
    assert info.model == "spandrel:SPAN" and info.scale == 2 and info.task == "srgan"
    assert info.source.startswith("spandrel ") and "SPAN" in info.source and info.value_range == (0.0, 1.0)
    assert info.kwargs == {"in_channels": 3, "out_channels": 3} and model.size_multiple == 1
    json.loads(info.to_json())  # the description can be stored (export metadata)

    model, info = load_generator(files["swinir"])
    assert info.model == "spandrel:SwinIR" and not model.supports_half and model.supports_bfloat16
    assert model.size_multiple == 4 and model.minimum == 16  # the window grid, spandrel's minimum side
    assert info.extra["size_requirements"] == {"multiple": 4, "minimum": 16, "square": False}

    model, info = load_generator(files["drunet"])
    assert info.model == "spandrel:DRUNet" and info.scale == 1 and info.task == "" and model.size_multiple == 8


def test_i2i_importers_come_before_spandrel():
    path = SHARED / "reference-checkpoints" / "basicsr_msrresnet_x2_f32b4.pth"
    if not path.is_file():
        pytest.skip("reference checkpoints not available")
    _, info = load_generator(path)
    assert not info.model.startswith("spandrel:") and "BasicSR" in info.source


def test_spandrel_is_imported_only_when_a_file_needs_it():
    code = (
        "import sys, i2i, i2i.cli, i2i.checkpoint, i2i.foreign.community, i2i.inference.export; "
        "print('spandrel' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("name", ["span", "swinir", "hat"])
def test_upscale_matches_spandrel_whole_and_tiled(files, photos, tmp_path, name):
    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    run("upscale", "--model", files[name], photos, whole, "--tile", "0", *CPU)
    run("upscale", "--model", files[name], photos, tiled, "--tile", "32", "--tile-overlap", "16", *CPU)
    for image in ("a.png", "b.png"):
        source = read_image(photos / image)
        out, out_tiled = read_image(whole / image), read_image(tiled / image)
        assert out.shape == out_tiled.shape == (2 * source.shape[0], 2 * source.shape[1], 3)
        assert level_difference(out, spandrel_output(files[name], source)).max() <= 1
        difference = level_difference(out, out_tiled)
        assert difference.max() <= 1 and difference.mean() < 0.05, (difference.max(), difference.mean())


def test_restoration_model_in_batches_matches_spandrel(files, photos, tmp_path):
    # DRUNet's call convention builds a one-image noise map: a batch runs image by image.
    write_image(photos / "c.png", photo(37, 53)[::-1].copy())  # the same size as a.png: one batch of two
    out = tmp_path / "out"
    result = run("translate", "--model", files["drunet"], photos, out, "--batch-size", "2", *CPU)
    assert "3 written" in result.output
    for image in ("a.png", "b.png", "c.png"):
        source = read_image(photos / image)
        restored = read_image(out / image)
        assert restored.shape == source.shape
        assert level_difference(restored, spandrel_output(files["drunet"], source)).max() <= 1


def test_images_below_the_minimum_side_are_padded(files, tmp_path):
    write_image(tmp_path / "tiny.png", photo(9, 13))
    run("upscale", "--model", files["swinir"], tmp_path / "tiny.png", tmp_path / "tiny_x2.png", *CPU)
    assert read_image(tmp_path / "tiny_x2.png").shape == (18, 26, 3)


# ----------------------------------------------------------------------------- video, devices, eval


@pytest.fixture
def clip(tmp_path) -> Path:
    """8 frames of 64x48 at 8 fps, written by OpenCV; every frame differs."""
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (64, 48))
    base = photo(48, 128)
    for i in range(8):
        writer.write(cv2.cvtColor(np.ascontiguousarray(base[:, i * 8 : i * 8 + 64]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_to_frames_on_one_and_two_devices(files, clip, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert "8 frames written" in run("video", clip, one, "--model", files["span"], *CPU).output
    assert "8 frames written" in run("video", clip, two, "--model", files["span"], "--devices", "cpu,cpu").output
    names = sorted(p.name for p in one.iterdir())
    assert len(names) == 8 and names == sorted(p.name for p in two.iterdir())
    for name in names:
        frame = read_image(one / name)
        assert frame.shape == (96, 128, 3)
        assert np.array_equal(frame, read_image(two / name))  # each device runs its own copy of the model


def test_a_translator_copy_for_another_device_runs_the_same_model(files):
    translator = Translator.from_file(files["span"], device="cpu")
    image = photo(24, 20)
    first = translator.translate_image(image)  # SPAN re-derives weights in inference mode when it runs
    assert np.array_equal(translator.to_device("cpu").translate_image(image), first)


def test_eval_scores_a_community_model(files, tmp_path):
    write_image(tmp_path / "hr" / "a.png", photo(48, 64))
    write_image(tmp_path / "hr" / "b.png", photo(40, 56))
    report = json.loads(run("eval", "--model", files["span"], "--hr", tmp_path / "hr", "--format", "json", *CPU).output)
    assert report["settings"]["scale"] == 2 and len(report["images"]) == 2
    assert all(np.isfinite(image["model_psnr"]) for image in report["images"])


# ----------------------------------------------------------------------------- precision


def test_half_precision_follows_what_spandrel_says(files, photos, tmp_path):
    swinir, _ = load_generator(files["swinir"])
    span, _ = load_generator(files["span"])
    cuda = torch.device("cuda")  # only resolved, nothing runs there
    assert supported_precision(swinir, "auto", cuda) is None  # auto on CUDA: fp32, not fp16
    assert supported_precision(span, "auto", cuda) == torch.float16
    assert supported_precision(swinir, "bf16", cuda) == torch.bfloat16
    result = run("upscale", "--model", files["swinir"], photos, tmp_path / "out", "--precision", "fp16", *CPU, code=2)
    assert "SwinIR models do not support fp16" in result.output and "bf16" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- export


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_span_exports_with_dynamic_sizes(files, tmp_path):
    translator = Translator.from_file(files["span"], device="cpu")
    x = torch.rand(2, 3, 29, 41)
    want = translator.translate_tensor(x).numpy()
    run("export", "--model", files["span"], "--format", "torchscript", "-o", tmp_path / "span.pt")
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "span.pt"))(x).numpy()
    assert got.shape == (2, 3, 58, 82) and np.abs(got - want).max() < 1e-4
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run("export", "--model", files["span"], "-o", tmp_path / "span.onnx")
    session = ort.InferenceSession(str(tmp_path / "span.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    assert np.abs(got - want).max() < 1e-4
    assert json.loads(session.get_modelmeta().custom_metadata_map["i2i"])["model"] == "spandrel:SPAN"


def test_window_attention_models_say_they_cannot_be_exported(files, tmp_path):
    result = run("export", "--model", files["swinir"], "-o", tmp_path / "swinir.onnx", code=1)
    assert "spandrel:SwinIR cannot be exported" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- refusals


def test_a_file_nothing_recognises_names_every_format(photos, tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.rand(4, 3, 3, 3), "decoder.bias": torch.rand(3)}, path)
    result = run("upscale", "--model", path, photos, tmp_path / "out", *CPU, code=1)
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "Unrecognised checkpoint format" in line and "BasicSR MSRResNet" in line  # i2i's formats
    assert "Not a spandrel model either" in line
    assert all(family in line for family in ("SwinIR", "HAT", "DAT", "SPAN", "RealCUGAN"))


def test_pickled_models_are_refused_before_spandrel_sees_them(photos, tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save(nn.Conv2d(3, 12, 3), path)  # a whole object, not a state_dict
    result = run("upscale", "--model", path, photos, tmp_path / "out", *CPU, code=1)
    assert "weights_only" in result.output and "Traceback" not in result.output


def test_inpainting_models_are_refused():
    from i2i.foreign.community import CommunityModel

    conv = nn.Conv2d(4, 3, 1)
    lama = spandrel.MaskedImageModelDescriptor(
        conv, conv.state_dict(), architecture=spandrel.MAIN_REGISTRY["LaMa"].architecture, purpose="Inpainting",
        tags=[], supports_half=False, supports_bfloat16=True, input_channels=3, output_channels=3,
    )
    with pytest.raises(ModelError, match="LaMa inpainting model, which needs a mask"):
        CommunityModel.from_descriptor(lama, path="big-lama.pth")
