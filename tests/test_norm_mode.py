"""--norm-mode train|eval and --seed: pix2pix's test-time behaviour (batch statistics, dropout on)."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from i2i.checkpoint import GeneratorInfo
from i2i.cli import main
from i2i.data.io import read_image, write_image
from i2i.errors import UsageError
from i2i.inference.translator import Translator, resolve_norm_mode
from i2i.models import create_model
from test_translator import photo

OFFICIAL_UNET = "pytorch-CycleGAN-and-pix2pix UnetGenerator"
UNET_KWARGS = dict(num_downs=6, base_channels=4, norm="batch", dropout=True)


def unet_with_batchnorm() -> nn.Module:
    """A U-Net with BatchNorm (random stored statistics) and dropout, as pix2pix trains it."""
    torch.manual_seed(0)
    model = create_model("unet", **UNET_KWARGS)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
    return model


def unet_info(source: str = OFFICIAL_UNET) -> GeneratorInfo:
    return GeneratorInfo(model="unet", kwargs=UNET_KWARGS, source=source)


def as_levels(y: torch.Tensor) -> np.ndarray:
    return ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) / 2 * 255).round().numpy().astype(np.uint8)


def test_train_mode_uses_the_image_statistics_and_dropout_and_keeps_the_stored_statistics():
    model = unet_with_batchnorm()
    reference = copy.deepcopy(model)
    stored = {key: value.clone() for key, value in model.state_dict().items()}
    image = photo(64, 64)
    translator = Translator(model, unet_info(), device="cpu", norm_mode="train", seed=7, channels_last=False)
    assert translator.norm_mode == "train"
    out = translator.translate_image(image)

    # What test.py computes: the network in train mode, on this one image, with dropout drawn from seed 7.
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    with torch.no_grad():
        torch.manual_seed(7)
        expected = as_levels(copy.deepcopy(reference).train()(x))
        in_eval = as_levels(reference.eval()(x))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(out.astype(int) - in_eval.astype(int)).mean() > 5  # the modes really differ
    for key, value in translator.module.state_dict().items():  # nothing learned from the images
        assert torch.equal(value.cpu(), stored[key]), key
    # Eval mode gives the eval-mode network's output.
    evaluated = Translator(unet_with_batchnorm(), unet_info(), device="cpu", norm_mode="eval").translate_image(image)
    assert np.abs(evaluated.astype(int) - in_eval.astype(int)).max() <= 1


def test_auto_is_train_only_for_official_files_with_batchnorm_or_dropout():
    assert resolve_norm_mode("auto", unet_info()) == "train"
    assert resolve_norm_mode("auto", unet_info(source="i2i")) == "eval"  # i2i's own files: eval, as in training
    plain = GeneratorInfo(model="resnet_9blocks", kwargs={"norm": "instance", "dropout": False},
                          source="pytorch-CycleGAN-and-pix2pix ResnetGenerator")
    assert resolve_norm_mode("auto", plain) == "eval"  # CycleGAN's files: both modes are the same
    assert resolve_norm_mode("eval", unet_info()) == "eval"
    assert resolve_norm_mode("train", unet_info(source="i2i")) == "train"
    with pytest.raises(UsageError, match="auto, train or eval"):
        resolve_norm_mode("test", unet_info())


def test_seed_makes_dropout_repeatable_whatever_came_before():
    first, second = photo(64, 64), photo(64, 64)[::-1].copy()
    seeded = Translator(unet_with_batchnorm(), unet_info(), device="cpu", seed=3)
    alone = seeded.translate_image(second)
    after_another = seeded.translate_images([first, second])[1]
    np.testing.assert_array_equal(alone, after_another)
    unseeded = Translator(unet_with_batchnorm(), unet_info(), device="cpu")
    runs = [unseeded.translate_image(second) for _ in range(3)]
    assert any(not np.array_equal(runs[0], other) for other in runs[1:])  # dropout is on and random


def test_train_mode_refuses_tiles_and_batches_with_the_fix():
    with pytest.raises(UsageError, match=r"--tile 128.*--norm-mode eval"):
        Translator(unet_with_batchnorm(), unet_info(), device="cpu", tile=128)
    with pytest.raises(UsageError, match=r"--batch-size 2.*--norm-mode eval"):
        Translator(unet_with_batchnorm(), unet_info(source="i2i"), device="cpu", norm_mode="train", batch_size=2)
    batched = Translator(unet_with_batchnorm(), unet_info(), device="cpu", norm_mode="eval", batch_size=2, tile=128)
    assert batched.batch_size == 2 and batched.norm_mode == "eval"


@pytest.fixture
def official_unet(monkeypatch):
    """`--model NAME` loads the BatchNorm U-Net described as an official pix2pix file."""

    def from_file(path, *, direction=None, device="cpu", **options):
        return Translator(unet_with_batchnorm(), unet_info(), device=device, **options)

    monkeypatch.setattr(Translator, "from_file", staticmethod(from_file))


def test_cli_norm_mode_and_seed(official_unet, tmp_path):
    write_image(tmp_path / "in" / "a.png", photo(64, 64))
    runner = CliRunner()
    outputs = []
    for name in ("one", "two"):
        result = runner.invoke(main, ["translate", "-m", "m", str(tmp_path / "in"), str(tmp_path / name), "--seed", "5"])
        assert result.exit_code == 0, result.output
        outputs.append(read_image(tmp_path / name / "a.png"))
    np.testing.assert_array_equal(*outputs)
    result = runner.invoke(main, ["translate", "-m", "m", str(tmp_path / "in"), str(tmp_path / "ev"), "--norm-mode", "eval"])
    assert result.exit_code == 0, result.output
    assert np.abs(read_image(tmp_path / "ev" / "a.png").astype(int) - outputs[0].astype(int)).mean() > 5
    result = runner.invoke(main, ["translate", "-m", "m", str(tmp_path / "in"), str(tmp_path / "t"), "--tile", "128"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "--norm-mode eval" in result.output
    frames = runner.invoke(main, ["video", "-m", "m", str(tmp_path / "in"), str(tmp_path / "frames"), "--seed", "5"])
    assert frames.exit_code == 0, frames.output
    np.testing.assert_array_equal(read_image(tmp_path / "frames" / "a.png"), outputs[0])


def test_i2i_load_takes_norm_mode_and_seed(tmp_path):
    import i2i
    from i2i.checkpoint import save_generator

    path = tmp_path / "gen.safetensors"
    save_generator(path, unet_with_batchnorm(), GeneratorInfo(model="unet", kwargs=UNET_KWARGS, task="pix2pix"))
    assert i2i.load(path, device="cpu").norm_mode == "eval"  # i2i's own files: eval, as validated in training
    image = photo(64, 64)
    first = i2i.load(path, device="cpu", norm_mode="train", seed=1).translate_image(image)
    again = i2i.load(path, device="cpu", norm_mode="train", seed=1).translate_image(image)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - i2i.load(path, device="cpu").translate_image(image).astype(int)).mean() > 5


def test_an_image_too_large_in_train_mode_is_an_error_not_tiles():
    from i2i.inference.planner import InferenceMemoryError
    from test_translator import FakeOOM

    translator = Translator(unet_with_batchnorm(), unet_info(), device="cpu")
    translator.model = FakeOOM(translator.model, limit=64 * 64 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "retrying with tiles" warning either
        with pytest.raises(InferenceMemoryError, match=r"64x64 image does not fit.*--norm-mode eval"):
            translator.translate_image(photo(64, 64))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_train_mode_is_repeatable_with_a_seed_and_keeps_the_stored_statistics():
    translator = Translator(unet_with_batchnorm(), unet_info(), device="cuda", seed=4, precision="fp32")
    stored = {key: value.clone() for key, value in translator.module.state_dict().items()}
    image = photo(64, 64)
    outputs = [translator.translate_image(image) for _ in range(2)]
    np.testing.assert_array_equal(*outputs)
    for key, value in translator.module.state_dict().items():
        assert torch.equal(value, stored[key]), key
    on_cpu = Translator(unet_with_batchnorm(), unet_info(), device="cpu", norm_mode="eval").translate_image(image)
    assert np.abs(outputs[0].astype(int) - on_cpu.astype(int)).mean() > 5  # train mode, not eval, on the GPU too
