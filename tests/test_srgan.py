"""SRGAN end to end on real photos: two stages from the CLI, paired data, evaluation, the bundled
x4 model, and the published bicubic figure for Set5's butterfly."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import run_cli as run
from i2i.checkpoint import BUNDLED_MODELS, bundled_model_path, load_generator
from i2i.config import load_config, parse_config
from i2i.data.io import read_image, write_image
from i2i.data.resize import imresize_array
from i2i.evaluation import evaluate_sr
from i2i.recipes import resolve_config_path
from i2i.tasks import TASKS
from i2i.trainer import Trainer

SR_RECIPES = ["srresnet_x4", "srgan_x4", "srgan_x4_basicsr", "sr_finetune", "sr_x4_default"]



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
    assert (paper.perceptual_layer, paper.lambda_adv, paper.lambda_pixel) == ("relu5_4", 0.001, 0.0)


# --- fidelity of the recipes to the paper and to BasicSR -------------------------------------------


def _recipe_task(recipe: str, *overrides: str):
    """The recipe's task with a stand-in feature network (no VGG19 weights needed)."""
    config = load_config(resolve_config_path(recipe), list(overrides))
    return TASKS["srgan"](config, feature_network=torch.nn.Conv2d(3, 4, 3))


def test_the_paper_recipe_uses_relu5_4_and_the_papers_discriminator_on_96_px() -> None:
    from torchvision.models.vgg import cfgs, make_layers

    from i2i.losses import VGG19_LAYERS
    from i2i.models import model_role

    # relu5_4 is the activation after torchvision's last conv of block 5; conv5_4 is that conv.
    features = make_layers(cfgs["E"])
    assert isinstance(features[VGG19_LAYERS["relu5_4"]], torch.nn.ReLU)
    conv = features[VGG19_LAYERS["conv5_4"]]
    assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == conv.out_channels == 512
    assert VGG19_LAYERS["relu5_4"] + 1 == VGG19_LAYERS["pool5"]

    config = load_config(resolve_config_path("srgan_x4"))
    assert config.task.perceptual_layer == "relu5_4" and config.task.update_order == "d_then_g"
    assert config.data.crop_size == 96
    task = _recipe_task("srgan_x4")
    D = task.networks["D"]
    assert model_role(D.model_spec["name"]) == "discriminator"
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules()) == 7  # all but the first conv
    slopes = {m.negative_slope for m in D.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    dense = [m for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512 * 6 * 6, 1024), (1024, 1)]
    assert D(torch.rand(2, 3, 96, 96)).shape == (2, 1)


#: BasicSR's VGGStyleDiscriminator(num_in_ch=3, num_feat=64, input_size=128), layer by layer:
#: (in, out, kernel, bias) convs, the widths of its BatchNorms, then dense 8192 -> 100 -> 1.
_BASICSR_D_CONVS = [
    (3, 64, 3, True), (64, 64, 4, False), (64, 128, 3, False), (128, 128, 4, False), (128, 256, 3, False),
    (256, 256, 4, False), (256, 512, 3, False), (512, 512, 4, False), (512, 512, 3, False), (512, 512, 4, False),
]
_BASICSR_D_NORMS = [64, 128, 128, 256, 256, 512, 512, 512, 512]


def test_basicsr_vgg_style_discriminator_has_basicsrs_layers_and_parameter_count() -> None:
    from i2i.models import create_model, model_role

    D = create_model("vgg_style_discriminator", base_channels=64, input_size=128)
    assert model_role("vgg_style_discriminator") == "discriminator"
    expected = sum(i * o * k * k + (o if b else 0) for i, o, k, b in _BASICSR_D_CONVS)
    expected += sum(2 * c for c in _BASICSR_D_NORMS) + (8192 * 100 + 100) + (100 + 1)
    assert expected == 14_499_401  # "about 14.5M", as BasicSR reports for its SRGAN/ESRGAN D
    assert sum(p.numel() for p in D.parameters()) == expected
    # BasicSR's parameter names, so its net_d state dicts load as they are.
    shapes = {k: tuple(v.shape) for k, v in D.state_dict().items()}
    assert shapes["conv0_0.weight"] == (64, 3, 3, 3) and "conv0_0.bias" in shapes and "bn0_0.weight" not in shapes
    assert shapes["conv4_1.weight"] == (512, 512, 4, 4) and shapes["linear1.weight"] == (100, 8192)
    small = create_model("vgg_style_discriminator", base_channels=4)
    assert small(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    with pytest.raises(ValueError, match="128 or 256"):
        create_model("vgg_style_discriminator", input_size=96)
    with pytest.raises(ValueError, match="crop_size to 128"):
        small(torch.rand(1, 3, 96, 96))


def test_basicsr_recipe_schedule_discriminator_and_default_init() -> None:
    from i2i.training.schedule import lr_factor

    config = load_config(resolve_config_path("srgan_x4_basicsr"))
    s = config.schedule
    assert (s.policy, s.milestones, s.gamma) == ("multistep", (50000, 100000, 200000, 300000), 0.5)
    factors = [lr_factor(s, step, steps_per_epoch=1, total_steps=400000) for step in (49999, 50000, 100000, 200000, 300000)]
    assert factors == [1.0, 0.5, 0.25, 0.125, 0.0625]
    t = config.task
    assert (t.beta1, t.beta2, t.perceptual_layer, t.update_order) == (0.9, 0.99, "conv5_4", "g_then_d")
    assert t.discriminator["name"] == "vgg_style_discriminator" and config.data.crop_size == 128
    # The generator is BasicSR's MSRResNet: 1,517,571 parameters at 64 features, 16 blocks, x4.
    torch.manual_seed(0)
    task = _recipe_task("srgan_x4_basicsr", "task.discriminator.base_channels=8")
    assert sum(p.numel() for p in task.networks["G"].parameters()) == 1_517_571
    # PyTorch's own initialisation, as BasicSR leaves it: BatchNorm weights exactly 1, dense biases
    # drawn (i2i's initialiser would zero them), conv weights within kaiming-uniform's 1/sqrt(fan_in).
    D = task.networks["D"]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in D.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert D.linear1.bias.abs().sum() > 0
    assert D.conv0_0.weight.abs().max() <= 1 / math.sqrt(3 * 3 * 3)
    # The rule when the key is left empty: default for BasicSR's discriminator, N(0, 0.02) otherwise.
    raw = {"name": "srgan", "discriminator": {"name": "vgg_style_discriminator", "base_channels": 4}}
    assert parse_config({"task": raw}).task.discriminator_init() == "default"
    assert parse_config({"task": {"name": "srgan"}}).task.discriminator_init() == "normal"


@pytest.mark.parametrize("order, expected", [("d_then_g", ["D", "G"]), ("g_then_d", ["G", "D"])])
def test_update_order_is_a_task_option(order: str, expected: list[str]) -> None:
    from test_task_contract import FakeContext

    raw = {
        "name": "srgan", "generator": {"name": "srresnet", "base_channels": 4, "num_blocks": 1, "norm": "none"},
        "discriminator": {"name": "patchgan", "base_channels": 4, "n_layers": 2}, "lambda_perceptual": 0.0,
        "update_order": order,
    }
    task = TASKS["srgan"](parse_config({"task": raw, "data": {"crop_size": 32}}))
    context = FakeContext()
    task.attach(context)
    context.optimizer_names = {id(o): name for name, o in task.optimizers.items()}
    seen: list[torch.Tensor] = []
    original = task.networks["D"].forward
    task.networks["D"].forward = lambda x: (seen.append(x.detach().clone()), original(x))[1]
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 32, 32, generator=g)
    losses = task.train_step({"a": torch.rand(2, 3, 8, 8, generator=g), "b": hr})
    assert context.steps == expected
    assert {"D", "G_adv"} <= set(losses)
    # D sees HR once and the generator's output twice; with g_then_d its own update still learns
    # from the output G made before its step, as BasicSR's SRGANModel does.
    real_at, fakes_at = (0, (1, 2)) if order == "d_then_g" else (1, (0, 2))
    assert torch.equal(seen[real_at], hr)
    assert torch.equal(seen[fakes_at[0]], seen[fakes_at[1]]) and not torch.equal(seen[fakes_at[0]], hr)
    with pytest.raises(ValueError, match="update_order"):
        parse_config({"task": {**raw, "update_order": "both"}})


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


def test_srresnet_recipe_header_gives_basicsrs_msrresnet_recipe() -> None:
    import shlex

    path = resolve_config_path("srresnet_x4")
    header = [line[1:] for line in Path(path).read_text().splitlines() if line.startswith("#")]
    start = next(i for i, line in enumerate(header) if "train_MSRResNet_x4.yml" in line)
    command = [line.strip().rstrip("\\") for line in header[start:] if line.strip().startswith(("i2i train", "--set"))]
    words = shlex.split(" ".join(command))
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "--set" and "data.root" not in words[i + 1]]
    config = load_config(path, overrides)
    t, d = config.task, config.data
    assert (t.pixel_criterion, t.lr, t.beta1, t.beta2) == ("l1", 2e-4, 0.9, 0.99)
    assert (d.crop_size, d.batch_size, t.rotate, d.flip, config.train.max_steps) == (128, 16, True, True, 1_000_000)
    torch.manual_seed(0)
    G = TASKS["srgan"](config).networks["G"]
    assert sum(p.numel() for p in G.parameters()) == 1_517_571  # BasicSR's MSRResNet x4, 64 features, 16 blocks
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    assert config.task.generator_gain() == 0.1  # BasicSR's default_init_weights scale
