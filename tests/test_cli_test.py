"""`i2i test`: a test split through a generator, onto pytorch-CycleGAN-and-pix2pix's results page."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import SHARED
from i2i.checkpoint import GeneratorInfo, save_generator
from i2i.cli import main
from i2i.data.io import list_images, read_image
from i2i.imageops import image_to_tensor
from i2i.inference.translator import Translator
from i2i.metrics import l1, psnr, ssim
from i2i.registry import create_model

REFERENCE = SHARED / "reference-checkpoints"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference-checkpoints is absent")


def _generator(path: Path, *, direction: str = "", seed: int = 0) -> Path:
    """A tiny random U-Net generator file (i2i's own format)."""
    torch.manual_seed(seed)
    kwargs = {"in_channels": 3, "out_channels": 3, "num_downs": 3, "base_channels": 4, "norm": "instance"}
    info = GeneratorInfo(model="unet", kwargs=kwargs, task="pix2pix", direction=direction)
    save_generator(path, create_model("unet", **kwargs), info)
    return path


def _test(*args: str):
    return CliRunner().invoke(main, ["test", *map(str, args)])


def _page_items(page: str) -> list[tuple[str, list[str]]]:
    """``[(heading, [caption, ...]), ...]`` in page order."""
    items = []
    for block in page.split("<h3>")[1:]:
        name = block.split("</h3>")[0]
        items.append((name, re.findall(r"<br><p>([^<]+)</p></td>", block)))
    return items


def _unit(image: np.ndarray) -> torch.Tensor:
    return image_to_tensor(image, (0.0, 1.0))[None]


def test_pix2pix_page_scores_every_image_as_i2i_metrics_do(demo_data, tmp_path):
    root = demo_data / "gray2color"
    model = _generator(tmp_path / "gen.safetensors", direction="AtoB")
    result = _test(model, "--data", root, "--num-test", 3, "--results-dir", tmp_path / "results", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "gen" / "test_latest"
    page = (out / "index.html").read_text()
    pairs = list_images(root / "test")
    assert len(pairs) == 2  # --num-test 3 of a split of 2: both
    assert _page_items(page) == [(p.stem, ["real_A", "fake_B", "real_B"]) for p in pairs]
    assert len(list((out / "images").iterdir())) == 6
    translator = Translator.from_file(model, device="cpu")
    found = {m: [] for m in ("l1", "psnr", "ssim")}
    for pair_path in pairs:
        pair = read_image(pair_path)
        real_a, real_b = np.split(pair, 2, axis=1)
        assert np.array_equal(read_image(out / "images" / f"{pair_path.stem}_real_A.png"), real_a)
        assert np.array_equal(read_image(out / "images" / f"{pair_path.stem}_real_B.png"), real_b)
        fake_b = read_image(out / "images" / f"{pair_path.stem}_fake_B.png")
        assert np.array_equal(fake_b, translator.translate_image(real_a))
        expected = {"l1": float(l1(_unit(fake_b), _unit(real_b))), "psnr": float(psnr(_unit(fake_b), _unit(real_b))),
                    "ssim": float(ssim(_unit(fake_b), _unit(real_b)))}
        block = page.split(f"<h3>{pair_path.stem}</h3>")[1]
        shown = re.search(r"L1 ([\d.]+) &nbsp; PSNR ([\d.]+) dB &nbsp; SSIM ([\d.-]+)", block).groups()
        assert shown == (f"{expected['l1']:.4f}", f"{expected['psnr']:.2f}", f"{expected['ssim']:.4f}")
        for m, v in expected.items():
            found[m].append(v)
    for m, values in found.items():
        assert f"<td class='mean-{m}'>{np.mean(values):.4f}</td>" in page
    assert page.index("class='means'") < page.index("<h3>")
    assert f"PSNR {np.mean(found['psnr']):.2f} dB" in result.output


def test_a_finished_page_is_kept_unless_overwrite(demo_data, tmp_path):
    model = _generator(tmp_path / "gen.safetensors")
    args = (model, "--data", demo_data / "gray2color", "--num-test", 1, "--results-dir", tmp_path, "--device", "cpu")
    assert _test(*args).exit_code == 0
    page = tmp_path / "gen" / "test_latest" / "index.html"
    before = page.read_bytes()
    _generator(model, seed=1)  # another model of the same name
    refused = _test(*args)
    assert refused.exit_code == 2 and "--overwrite" in refused.output and "Traceback" not in refused.output
    assert page.read_bytes() == before
    assert _test(*args, "--overwrite").exit_code == 0
    assert page.read_bytes() != before


def test_btoa_swaps_the_halves_and_val_stands_in_for_a_missing_test_split(demo_data, tmp_path):
    root = tmp_path / "pairs"
    shutil.copytree(demo_data / "gray2color" / "val", root / "val")
    model = _generator(tmp_path / "gen.safetensors")
    result = _test(model, "--data", root, "--direction", "BtoA", "--results-dir", tmp_path / "r", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "using the val split" in result.output
    out = tmp_path / "r" / "gen" / "test_latest"
    first = list_images(root / "val")[0]
    pair = read_image(first)
    assert np.array_equal(read_image(out / "images" / f"{first.stem}_real_A.png"), np.split(pair, 2, axis=1)[1])
    assert np.array_equal(read_image(out / "images" / f"{first.stem}_real_B.png"), np.split(pair, 2, axis=1)[0])
    assert len(_page_items((out / "index.html").read_text())) == len(list_images(root / "val"))


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory) -> Path:
    from i2i.data.demo import make_unpaired_demo

    return make_unpaired_demo(tmp_path_factory.mktemp("unpaired"), size=32, crops_per_photo=2, seed=0)


def test_cyclegan_run_folder_translates_testB_with_its_BtoA_generator(unpaired, tmp_path):
    run = tmp_path / "runs" / "h2z"
    run.mkdir(parents=True)
    _generator(run / "G_A.safetensors", direction="AtoB", seed=0)
    _generator(run / "G_B.safetensors", direction="BtoA", seed=1)
    result = _test(run, "--data", unpaired, "--direction", "BtoA", "--results-dir", tmp_path / "r", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "r" / "h2z" / "test_latest"
    inputs = list_images(unpaired / "testB")
    assert _page_items((out / "index.html").read_text()) == [(p.stem, ["real_A", "fake_B"]) for p in inputs]
    assert "class='means'" not in (out / "index.html").read_text()  # unpaired: nothing to score against
    g_b = Translator.from_file(run / "G_B.safetensors", device="cpu")
    fake = read_image(out / "images" / f"{inputs[0].stem}_fake_B.png")
    assert np.array_equal(fake, g_b.translate_image(read_image(inputs[0])))


@needs_reference
def test_official_cyclegan_file_names_the_results_after_its_folder(unpaired, tmp_path):
    model = tmp_path / "checkpoints" / "horse2zebra" / "latest_net_G_A.pth"
    model.parent.mkdir(parents=True)
    shutil.copy(REFERENCE / "junyanz_resnet9_instance_ngf8.pth", model)
    result = _test(model, "--data", unpaired, "--num-test", 2, "--results-dir", tmp_path / "r", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "r" / "horse2zebra" / "test_latest"
    page = (out / "index.html").read_text()
    assert "Experiment = horse2zebra, Phase = test, Epoch = latest" in page
    inputs = list_images(unpaired / "testA")[:2]
    assert _page_items(page) == [(p.stem, ["real_A", "fake_B"]) for p in inputs]
    reference = Translator.from_file(model, device="cpu", norm_mode="eval")
    fake = read_image(out / "images" / f"{inputs[1].stem}_fake_B.png")
    assert np.array_equal(fake, reference.translate_image(read_image(inputs[1])))


@needs_reference
def test_official_pix2pix_file_in_train_norm_mode(demo_data, tmp_path):
    model = tmp_path / "facades" / "200_net_G.pth"
    model.parent.mkdir()
    shutil.copy(REFERENCE / "junyanz_unet128_instance_ngf8.pth", model)
    args = (model, "--data", demo_data / "gray2color", "--num-test", 1, "--results-dir", tmp_path / "r", "--device", "cpu")
    result = _test(*args, "--norm-mode", "train", "--seed", "3")
    assert result.exit_code == 0, result.output
    out = tmp_path / "r" / "facades" / "test_200"
    assert "norm mode train" in (out / "index.html").read_text()
    first = list_images(demo_data / "gray2color" / "test")[0]
    train_mode = Translator.from_file(model, device="cpu", norm_mode="train", seed=3)
    expected = train_mode.translate_image(np.split(read_image(first), 2, axis=1)[0])
    assert np.array_equal(read_image(out / "images" / f"{first.stem}_fake_B.png"), expected)


def test_a_root_without_the_split_names_the_layouts(tmp_path):
    model = _generator(tmp_path / "gen.safetensors")
    (tmp_path / "data").mkdir()
    result = _test(model, "--data", tmp_path / "data", "--results-dir", tmp_path / "r", "--device", "cpu")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "No 'test' split" in result.output and "testA/" in result.output and "--phase" in result.output


def test_results_inside_the_test_split_are_refused(demo_data, tmp_path):
    root = tmp_path / "pairs"
    shutil.copytree(demo_data / "gray2color" / "test", root / "test")
    before = sorted(p.name for p in (root / "test").iterdir())
    model = _generator(tmp_path / "gen.safetensors")
    result = _test(model, "--data", root, "--results-dir", root / "test", "--device", "cpu")
    assert result.exit_code == 2 and "--results-dir outside the data set" in result.output
    assert sorted(p.name for p in (root / "test").iterdir()) == before


def test_a_pix2pix_run_folder_tests_with_its_ema_generator_and_direction(demo_data, tmp_path):
    run = tmp_path / "runs" / "gray2color"
    run.mkdir(parents=True)
    _generator(run / "generator.safetensors", direction="BtoA", seed=0)
    _generator(run / "generator_ema.safetensors", direction="BtoA", seed=1)
    result = _test(run, "--data", demo_data / "gray2color", "--num-test", 1, "--results-dir", tmp_path / "r", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "r" / "gray2color" / "test_latest"
    first = list_images(demo_data / "gray2color" / "test")[0]
    real_b, real_a = np.split(read_image(first), 2, axis=1)  # the run translates BtoA: the right half is its input
    assert np.array_equal(read_image(out / "images" / f"{first.stem}_real_A.png"), real_a)
    ema = Translator.from_file(run / "generator_ema.safetensors", device="cpu")
    assert np.array_equal(read_image(out / "images" / f"{first.stem}_fake_B.png"), ema.translate_image(real_a))
