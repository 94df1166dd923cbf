"""SRGAN end to end on real photos: two stages from the CLI, paired data, evaluation, the bundled
x4 model, and the published bicubic figure for Set5's butterfly."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from i2i.checkpoint import BUNDLED_MODELS, bundled_model_path, load_generator
from i2i.cli import main
from i2i.config import load_config, parse_config
from i2i.data.io import read_image, write_image
from i2i.data.resize import imresize_array
from i2i.evaluation import evaluate_sr
from i2i.recipes import resolve_config_path
from i2i.tasks import TASKS
from i2i.trainer import Trainer

SR_RECIPES = ["srresnet_x4", "srgan_x4", "srgan_x4_basicsr", "sr_finetune", "sr_x4_default"]


def run(*args: object, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """HR crops of real photos: two for training, one held out for validation."""
    import skimage.data

    root = tmp_path_factory.mktemp("sr_photos")
    for split, name, (top, left) in (
        ("train", "astronaut", (60, 150)),
        ("train", "rocket", (150, 250)),
        ("val", "chelsea", (60, 150)),
    ):
        write_image(root / split / f"{name}.png", getattr(skimage.data, name)()[top : top + 64, left : left + 96])
    return root


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory) -> Path:
    """torchvision-format VGG19 weights up to conv1_2 (random): all the perceptual loss reads."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_conv1.pth"
    state = {
        "features.0.weight": torch.randn(64, 3, 3, 3) * 0.1,
        "features.0.bias": torch.zeros(64),
        "features.2.weight": torch.randn(64, 64, 3, 3) * 0.05,
        "features.2.bias": torch.zeros(64),
    }
    torch.save(state, path)
    return path


def _config(path: Path, photos: Path, out: Path, name: str, **task) -> Path:
    raw = {
        "task": {
            "name": "srgan",
            "scale": 4,
            "generator": {"name": "srresnet", "base_channels": 8, "num_blocks": 1, "norm": "none"},
            "discriminator": {"name": "patchgan", "base_channels": 8, "n_layers": 2},
            "lr": 0.001,
            **task,
        },
        "data": {"root": str(photos), "load_size": 32, "crop_size": 16, "batch_size": 4, "num_workers": 0, "val_items": 1},
        "schedule": {"policy": "constant", "unit": "step"},
        "train": {
            "output_dir": str(out), "name": name, "max_steps": 4, "log_every": 2, "val_every": 4,
            "sample_every": 4, "checkpoint_every": 100, "ema_decay": 0.9,
        },
        "seed": 0,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_stages_from_the_command_line(photos: Path, vgg_weights: Path, tmp_path: Path) -> None:
    stage1 = _config(tmp_path / "stage1.yaml", photos, tmp_path / "runs", "psnr", stage="psnr", pixel_criterion="l1")
    run("train", stage1)
    run1 = tmp_path / "runs" / "psnr"
    events = _events(run1)
    assert any("loss/pixel" in e for e in events) and any("val/psnr" in e for e in events)
    model, info = load_generator(run1)  # the run folder: its EMA generator
    assert (info.task, info.scale, info.value_range) == ("srgan", 4, (0.0, 1.0))
    assert (run1 / "generator.safetensors").exists() and (run1 / "generator_ema.safetensors").exists()

    stage2 = _config(
        tmp_path / "stage2.yaml", photos, tmp_path / "runs", "gan", stage="gan", vgg_weights=str(vgg_weights),
        perceptual_layer="conv1_2", lambda_pixel=0.01,
    )
    run("train", stage2, "--init-from", run1 / "generator_ema.safetensors")
    run2 = tmp_path / "runs" / "gan"
    losses = [e for e in _events(run2) if "loss/D" in e]
    assert losses and {"loss/G_adv", "loss/G_pixel", "loss/G_perceptual"} <= set(losses[-1])
    assert all(np.isfinite(v) for e in losses for k, v in e.items() if k.startswith("loss/"))
    resolved = yaml.safe_load((run2 / "config.yaml").read_text())
    assert resolved["task"]["init_from"].endswith("generator_ema.safetensors")

    # The stage-2 generator is usable everywhere a generator file is.
    out = tmp_path / "up.png"
    run("translate", "--model", run2, photos / "val" / "chelsea.png", out)
    assert read_image(out).shape == (256, 384, 3)
    table = run("eval", "--model", run2, "--hr", photos / "val", "--format", "json").output
    report = json.loads(table)
    assert report["settings"]["scale"] == 4 and report["images"][0]["model_psnr"] > 0


def test_stage_two_starts_from_stage_one(photos: Path, tmp_path: Path) -> None:
    stage1 = _config(tmp_path / "s1.yaml", photos, tmp_path / "runs", "s1", stage="psnr")
    config = load_config(stage1, ["train.max_steps=1"])
    Trainer(config).fit()
    first = tmp_path / "runs" / "s1" / "generator.safetensors"
    raw = yaml.safe_load(stage1.read_text())
    raw["task"].update(stage="gan", init_from=str(first), lambda_perceptual=0.0)
    task = TASKS["srgan"](parse_config(raw))
    trained, _ = load_generator(first)
    for key, value in trained.state_dict().items():
        assert torch.equal(task.networks["G"].state_dict()[key], value), key
    assert set(task.networks) == {"G", "D"} and task.perceptual is None
    raw["task"]["scale"] = 2
    with pytest.raises(ValueError, match="upscales x4 but task.scale is 2"):
        TASKS["srgan"](parse_config(raw))


def test_paired_folders_with_the_paper_discriminator(photos: Path, tmp_path: Path) -> None:
    # LR/HR pairs on disk (as a user's camera pairs would be), the VGG-style discriminator.
    for split in ("train", "val"):
        for path in (photos / split).iterdir():
            hr = read_image(path)
            write_image(tmp_path / "pairs" / "HR" / split / path.name, hr)
            write_image(tmp_path / "pairs" / "LR" / split / f"{path.stem}x4.png", imresize_array(hr, scale=0.25))
    raw = yaml.safe_load(
        _config(
            tmp_path / "c.yaml", tmp_path / "pairs", tmp_path / "runs", "paired", stage="gan", lambda_perceptual=0.0,
            discriminator={"name": "vgg_discriminator", "base_channels": 4, "input_size": 16},
        ).read_text()
    )
    raw["train"]["max_steps"] = 2
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    assert trainer.task._paired == {True: True, False: True}
    losses = [e for e in _events(trainer.run_dir) if "loss/D" in e]
    assert losses and "loss/G_perceptual" not in losses[-1]
    assert any("val/psnr" in e for e in _events(trainer.run_dir))


@pytest.mark.parametrize("recipe", SR_RECIPES)
def test_sr_recipes_parse(recipe: str) -> None:
    config = load_config(resolve_config_path(recipe))
    assert config.task.name == "srgan" and config.train.ema_decay > 0
    assert config.data.crop_size % config.task.scale == 0 and config.data.load_size >= config.data.crop_size


def test_basicsr_recipe_weights() -> None:
    task = load_config(resolve_config_path("srgan_x4_basicsr")).task
    assert (task.lambda_pixel, task.lambda_perceptual, task.lambda_adv) == (0.01, 1.0, 0.005)
    paper = load_config(resolve_config_path("srgan_x4")).task
    assert (paper.perceptual_layer, paper.lambda_adv, paper.lambda_pixel) == ("conv5_4", 0.001, 0.0)


# --- the bundled model ----------------------------------------------------------------------------


def test_bundled_x4_loads_by_name_and_beats_bicubic(tmp_path: Path) -> None:
    import skimage.data

    path = bundled_model_path("x4")
    assert "x4" in BUNDLED_MODELS and path.is_file() and path.stat().st_size < 5e6
    model, info = load_generator("x4")
    assert (info.scale, info.task, info.value_range) == (4, "srgan", (0.0, 1.0))
    assert "chelsea" in info.extra["held_out_photos"]
    # A photo it never saw in training (a crop, to stay quick).
    write_image(tmp_path / "hr" / "chelsea.png", skimage.data.chelsea()[40:200, 100:340])
    report = evaluate_sr("x4", tmp_path / "hr")
    assert report.images[0].model_psnr > report.images[0].bicubic_psnr + 0.2
    # And from the command line, an image goes in and comes out four times larger.
    out = tmp_path / "big.png"
    run("translate", "--model", "x4", tmp_path / "hr" / "chelsea.png", out)
    assert read_image(out).shape == (640, 960, 3)


# --- the published bicubic figure --------------------------------------------------------------


def _butterfly(cache_dir: Path) -> Path:
    """Set5's butterfly from Debian's opencv-doc package (downloaded once, then cached)."""
    target = cache_dir / "butterfly.png"
    if target.is_file():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb to fetch Debian's opencv-doc")
    work = cache_dir / "download"
    work.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=work, check=True, capture_output=True, timeout=120)
        (deb,) = work.glob("opencv-doc_*.deb")
        member = "./usr/share/doc/opencv-doc/examples/dnn_superres/butterfly.png"
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True, timeout=120)
        subprocess.run(["tar", "-x", "-C", str(work), member], input=tar.stdout, check=True, capture_output=True)
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        pytest.skip(f"could not fetch opencv-doc's butterfly.png: {exc}")
    shutil.move(str(work / member), target)
    shutil.rmtree(work)
    return target


def test_bicubic_reproduces_the_published_butterfly_figure(request, tmp_path: Path) -> None:
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    butterfly = _butterfly(Path(cache.mkdir("i2i_butterfly")) if cache is not None else tmp_path / "cache")
    (tmp_path / "hr").mkdir()
    shutil.copy(butterfly, tmp_path / "hr" / "butterfly.png")
    out = run("eval", "--hr", tmp_path / "hr", "--scale", "4", "--format", "csv").output
    row = dict(zip(*[line.split(",") for line in out.strip().splitlines()[:2]]))
    assert round(float(row["bicubic_psnr"]), 1) == 22.1
