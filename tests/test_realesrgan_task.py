"""The Real-ESRGAN task on real photos: both stages, fine-tuning from Real-ESRGAN's file formats,
paired data, exact resume with the training pair pool, the recipes and config errors."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from conftest import SHARED, run_cli as run
from i2i.checkpoint import load_generator, load_training_state
from i2i.config import ScheduleConfig, load_config, parse_config
from i2i.data.degradations import DegradationConfig
from i2i.data.io import read_image, write_image
from i2i.data.resize import imresize_array
from i2i.foreign import build_imported, import_checkpoint
from i2i.losses import FeatureTaps
from i2i.recipes import resolve_config_path
from i2i.tasks import TASKS
from i2i.tasks.realesrgan import PERCEPTUAL_LAYERS, RealESRGAN, _niqe, paired_flips
from i2i.trainer import Trainer
from i2i.training.schedule import lr_factor

REFERENCE = SHARED / "reference-checkpoints"
RECIPES = [
    "realesrnet_x4plus", "realesrgan_x4plus", "finetune_realesrgan_x4plus", "finetune_realesrgan_pairdata",
    "realesrgan_demo",
]



@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """HR crops of real photos: two for training, one held out for validation."""
    import skimage.data

    root = tmp_path_factory.mktemp("realesrgan_photos")
    for split, name, (top, left), (height, width) in (
        ("train", "astronaut", (30, 150), (128, 128)),
        ("train", "rocket", (150, 250), (128, 96)),
        ("val", "chelsea", (60, 150), (64, 96)),
    ):
        image = getattr(skimage.data, name)()[top : top + height, left : left + width]
        write_image(root / split / f"{name}.png", image)
    return root


@pytest.fixture(scope="module")
def pairs(photos: Path, tmp_path_factory) -> Path:
    """The same photos as LR/HR pairs on disk (a user's own pairs), the LR with an x4 suffix."""
    root = tmp_path_factory.mktemp("realesrgan_pairs")
    for split in ("train", "val"):
        for path in (photos / split).iterdir():
            hr = read_image(path)
            write_image(root / "HR" / split / path.name, hr)
            write_image(root / "LR" / split / f"{path.stem}x4.png", imresize_array(hr, scale=0.25))
    return root


def tiny_features() -> FeatureTaps:
    """A small random stand-in for VGG19, tapped under the names of Real-ESRGAN's five layers."""
    torch.manual_seed(0)
    stack = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
    )
    return FeatureTaps(stack, {"conv1_2": 2, "conv2_2": 5, "conv3_4": 8, "conv4_4": 8, "conv5_4": 8})


@pytest.fixture
def injected(monkeypatch) -> None:
    """Runs build the task with the tiny feature network instead of VGG19."""
    monkeypatch.setitem(TASKS, "realesrgan", functools.partial(RealESRGAN, feature_network=tiny_features()))


def tiny(root: Path, out: Path, name: str, *, steps: int = 4, **task) -> dict:
    return {
        "task": {
            "name": "realesrgan",
            "scale": 4,
            "generator": {"name": "rrdbnet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4},
            "discriminator": {"name": "unet_discriminator", "num_feat": 4},
            "degradations": {"pool_size": 4},
            "lr": 0.002,
            **task,
        },
        "data": {"root": str(root), "load_size": 64, "crop_size": 32, "batch_size": 2, "num_workers": 0, "val_items": 1},
        "schedule": {"policy": "constant", "unit": "step"},
        "train": {
            "output_dir": str(out), "name": name, "max_steps": steps, "log_every": 1, "val_every": steps,
            "sample_every": steps, "checkpoint_every": 1000, "ema_decay": 0.9,
        },
        "seed": 0,
    }


def fit(raw: dict) -> Trainer:
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    return trainer


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir: Path, key: str) -> list[float]:
    return [e[key] for e in events(run_dir) if key in e]


def falls(values: list[float], n: int = 3) -> bool:
    return float(np.mean(values[-n:])) < float(np.mean(values[:n]))


# --- the two stages -------------------------------------------------------------------------------


def test_realesrnet_stage_lowers_its_l1_loss(photos: Path, tmp_path: Path) -> None:
    trainer = fit(tiny(photos, tmp_path, "net", stage="realesrnet", steps=10))
    assert set(trainer.task.networks) == {"G"} and trainer.task.perceptual is None
    pixel = losses(trainer.run_dir, "loss/pixel")
    assert len(pixel) == 10 and falls(pixel), pixel
    # Held-out chelsea, shrunk with bicubic: PSNR/SSIM against its HR; samples LR | output | HR.
    assert any("val/psnr" in e and "val/ssim" in e for e in events(trainer.run_dir))
    assert read_image(next((trainer.run_dir / "samples").glob("step_*.png"))).shape == (64, 3 * 96, 3)
    model, info = load_generator(trainer.run_dir)
    assert (info.task, info.scale, info.model, info.extra["stage"]) == ("realesrgan", 4, "rrdbnet", "realesrnet")


def test_realesrgan_stage_lowers_its_losses(photos: Path, tmp_path: Path, injected) -> None:
    trainer = fit(tiny(photos, tmp_path, "gan", steps=10))
    run_dir = trainer.run_dir
    last = [e for e in events(run_dir) if "loss/D" in e][-1]
    assert {"loss/G_pixel", "loss/G_perceptual", "loss/G_adv", "loss/D", "loss/D_real_logit", "loss/D_fake_logit"} <= set(last)
    assert all(np.isfinite(v) for e in events(run_dir) for k, v in e.items() if k.startswith("loss/"))
    pixel, perceptual = losses(run_dir, "loss/G_pixel"), losses(run_dir, "loss/G_perceptual")
    assert falls(pixel) and falls(perceptual), (pixel, perceptual)
    assert trainer.task.pool is not None and trainer.task.pool.state_dict()["filled"] == 4


# --- fine-tuning from Real-ESRGAN's files ---------------------------------------------------------


def _clip(path: Path) -> Path:
    """Four 48x64 frames of a real photo, panning."""
    import skimage.data

    photo = skimage.data.astronaut()[100:148, 100:200]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 4.0, (64, 48))
    for i in range(4):
        writer.write(cv2.cvtColor(np.ascontiguousarray(photo[:, i * 8 : i * 8 + 64]), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs ../shared/reference-checkpoints")
def test_finetune_from_realesrgan_files_then_upscale_and_video(photos: Path, tmp_path: Path, injected) -> None:
    generator_file = REFERENCE / "realesrgan_rrdbnet_x4_f16b2g32.pth"
    disc_file = REFERENCE / "realesrgan_unet_disc_sn_f16.pth"
    # The net_d file loads through the importers and computes Real-ESRGAN's output.
    reference = torch.load(REFERENCE / "realesrgan_unet_disc_sn_f16.io.pt", weights_only=True)
    disc = build_imported(import_checkpoint(disc_file))
    assert torch.allclose(disc(reference["input"]), reference["output"], atol=1e-4)

    raw = tiny(photos, tmp_path, "finetune", steps=2, init_from=str(generator_file), discriminator_init_from=str(disc_file))
    trainer = Trainer(parse_config(raw))
    task = trainer.setup_task()
    start, _ = load_generator(generator_file)
    assert task.networks["G"].model_spec["kwargs"]["num_feat"] == 16  # from the file, not task.generator
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in task.networks["G"].state_dict().items())
    assert all(torch.equal(v, disc.state_dict()[k]) for k, v in task.networks["D"].state_dict().items())
    trainer.fit()
    assert any(not torch.equal(v, start.state_dict()[k]) for k, v in task.networks["G"].state_dict().items())

    run_dir = trainer.run_dir
    out = tmp_path / "up.png"
    run("upscale", "--model", run_dir, photos / "val" / "chelsea.png", out)
    assert read_image(out).shape == (256, 384, 3)
    frames = tmp_path / "frames"
    assert "4 frames written" in run("video", _clip(tmp_path / "clip.mp4"), frames, "--model", run_dir).output
    assert read_image(sorted(frames.iterdir())[0]).shape == (192, 256, 3)


def test_a_generator_file_is_refused_as_the_discriminator(tmp_path: Path, photos: Path) -> None:
    file = REFERENCE / "realesrgan_rrdbnet_x4_f16b2g32.pth"
    if not file.is_file():
        pytest.skip("needs ../shared/reference-checkpoints")
    raw = tiny(photos, tmp_path, "bad", discriminator_init_from=str(file), lambda_perceptual=0.0)
    with pytest.raises(ValueError, match="holds a rrdbnet .*, not Real-ESRGAN's U-Net discriminator"):
        RealESRGAN(parse_config(raw))


# --- paired data ------------------------------------------------------------------------------------


def test_paired_variant_trains_on_lr_hr_pairs(pairs: Path, tmp_path: Path, injected) -> None:
    trainer = fit(tiny(pairs, tmp_path, "paired", steps=6, degradation="paired", rotate=True))
    task = trainer.task
    assert task.degrader is None and task.pool is None and task._paired == {True: True, False: True}
    assert falls(losses(trainer.run_dir, "loss/G_pixel"))
    assert any("val/psnr" in e for e in events(trainer.run_dir))
    # The data must match the mode, with the fix in the message.
    with pytest.raises(ValueError, match="set task.degradation=paired"):
        fit(tiny(pairs, tmp_path, "mismatch", steps=1, degradation="synthetic", lambda_perceptual=0.0))


def test_flips_keep_lr_and_hr_aligned() -> None:
    torch.manual_seed(0)
    lr = torch.rand(16, 3, 4, 4)
    hr = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")
    lr2, hr2 = paired_flips([lr, hr], hflip=True, rotate=True)
    assert torch.equal(torch.nn.functional.interpolate(lr2, scale_factor=4, mode="nearest"), hr2)
    assert not torch.equal(lr2, lr)  # 16 samples: some were flipped


# --- exact resume -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory) -> Path:
    """torchvision-format VGG19 weights up to conv2_2 (random): what a two-layer loss reads."""
    torch.manual_seed(0)
    shapes = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128)}
    state = {}
    for index, (out_ch, in_ch) in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3) * (2.0 / (9 * in_ch)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(out_ch)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_conv2.pth"
    torch.save(state, path)
    return path


def _same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_resume_continues_the_pool_and_the_rng_exactly(photos: Path, tmp_path: Path, vgg_weights: Path) -> None:
    task = {"vgg_weights": str(vgg_weights), "perceptual_layers": {"conv1_2": 0.1, "conv2_2": 0.1}}
    straight = fit(tiny(photos, tmp_path / "a", "run", steps=5, **task))
    fit(tiny(photos, tmp_path / "b", "run", steps=3, **task))
    resumed = Trainer(resume=tmp_path / "b" / "run", overrides=("train.max_steps=5",))
    resumed.fit()
    a = load_training_state(straight.run_dir / "checkpoints" / "latest.pt")
    b = load_training_state(resumed.run_dir / "checkpoints" / "latest.pt")
    assert a["task"]["pool"]["filled"] == 4  # full since step 2: steps 3-5 swapped pairs
    for group in ("networks", "ema", "task"):
        _same(a[group], b[group], group)
    assert a["optimizers"]["D"]["state"][0]["step"] == b["optimizers"]["D"]["state"][0]["step"] == 5


# --- recipes, schedules, config errors -------------------------------------------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_parse(recipe: str) -> None:
    config = load_config(resolve_config_path(recipe))
    task = config.task
    assert task.name == "realesrgan" and config.train.ema_decay == (0.99 if recipe == "realesrgan_demo" else 0.999)
    assert task.beta1 == 0.9 and task.beta2 == 0.99 and task.gan_mode == "vanilla"
    assert config.data.crop_size % 8 == 0 and config.data.load_size >= config.data.crop_size
    assert task.degradations.pool_size % config.data.batch_size == 0
    assert config.schedule.policy == "multistep"


def test_recipes_hold_real_esrgans_numbers() -> None:
    net = load_config(resolve_config_path("realesrnet_x4plus"))
    assert (net.task.stage, net.task.lr, net.schedule.milestones, net.train.max_steps) == (
        "realesrnet", 2e-4, (1000000,), 1000000
    )
    assert net.task.init_from == "ESRGAN_SRx4_DF2KOST_official" and (net.data.load_size, net.data.crop_size) == (400, 256)
    assert net.task.degradations == DegradationConfig()  # the yml's numbers, spelled out, are the defaults
    gan = load_config(resolve_config_path("realesrgan_x4plus")).task
    assert gan.perceptual_layers == PERCEPTUAL_LAYERS and (gan.lambda_pixel, gan.lambda_perceptual, gan.lambda_adv) == (1, 1, 0.1)
    assert (gan.l1_gt_usm, gan.percep_gt_usm, gan.gan_gt_usm, gan.lr) == (True, True, False, 1e-4)
    assert gan.generator == {"name": "rrdbnet", "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
    for name, mode in (("finetune_realesrgan_x4plus", "synthetic"), ("finetune_realesrgan_pairdata", "paired")):
        task = load_config(resolve_config_path(name)).task
        assert (task.init_from, task.discriminator_init_from) == ("RealESRGAN_x4plus", "RealESRGAN_x4plus_netD")
        assert task.degradation == mode


def test_multistep_schedule() -> None:
    schedule = ScheduleConfig(policy="multistep", unit="step", milestones=(3, 5), gamma=0.5)
    factors = [lr_factor(schedule, step, steps_per_epoch=1, total_steps=8) for step in range(7)]
    assert factors == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]


def test_the_demo_recipe_runs_from_the_command_line(photos: Path, tmp_path: Path) -> None:
    run(
        "train", "realesrgan_demo", "--set", f"data.root={photos}", "--set", "data.train_split=train",
        "--set", "data.val_split=val", "--set", "data.load_size=96", "--set", f"train.output_dir={tmp_path}",
        "--set", "train.max_steps=2", "--set", "train.sample_every=2", "--set", "train.val_every=2",
    )
    assert (tmp_path / "realesrgan_demo" / "generator_ema.safetensors").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.stage=realesrgn", "task.stage is 'realesrgn'; expected one of realesrnet, realesrgan. Did you mean"),
        ("task.degradations.gaussian_noise_prob=1.5", "task.degradations.gaussian_noise_prob=1.5 must be a probability"),
        ("task.degradations.resize_prob2=[0.5, 0.4, 0.3]", "task.degradations.resize_prob2"),
        ("task.degradation=pairs", "task.degradation is 'pairs'; expected one of synthetic, paired"),
        ("task.perceptual_layers={conv9_9: 1}", "task.perceptual_layers key is 'conv9_9'"),
        ("task.degradations.jpeg_qualty=[30, 95]", "Unknown config key task.degradations.jpeg_qualty"),
        ("schedule.milestones=[]", "schedule.milestones is []"),
    ],
)
def test_config_errors_are_one_line(override: str, message: str, tmp_path: Path) -> None:
    result = run("train", "realesrgan_demo", "--dry-run", "--set", f"data.root={tmp_path}", "--set", override, code=2)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.output


def test_a_pool_that_batches_do_not_fill_evenly_is_refused(photos: Path, tmp_path: Path) -> None:
    raw = tiny(photos, tmp_path, "pool", stage="realesrnet")
    raw["task"]["degradations"] = {"pool_size": 5}
    with pytest.raises(ValueError, match=r"pool_size \(5\) must be a multiple of data.batch_size \(2\)"):
        RealESRGAN(parse_config(raw))


# --- validation on real LR photos without HR -------------------------------------------------------


@pytest.mark.skipif(_niqe() is None, reason="this i2i has no NIQE metric")
def test_real_lr_validation_reports_niqe(photos: Path, tmp_path: Path) -> None:
    import skimage.data

    write_image(tmp_path / "lr" / "train" / "astronaut.png", read_image(photos / "train" / "astronaut.png"))
    write_image(tmp_path / "lr" / "val" / "coffee.png", skimage.data.coffee()[100:196, 200:296])
    # Full-gain weights: an untrained generator's output is not flat then (NIQE needs texture).
    raw = tiny(tmp_path / "lr", tmp_path, "niqe", stage="realesrnet", steps=1, val_lr_only=True, generator_init_gain=1.0)
    trainer = fit(raw)
    record = [e for e in events(trainer.run_dir) if "val/niqe" in e]
    assert record and np.isfinite(record[-1]["val/niqe"]) and "val/psnr" not in record[-1]
