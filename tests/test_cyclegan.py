"""CycleGAN on the shared blocks and the common loop, trained on real photos."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from i2i.checkpoint import load_generator, load_training_state
from i2i.cli import main
from i2i.config import parse_config
from i2i.data.datasets import UnalignedDataset
from i2i.errors import DataError
from i2i.data.io import read_image, write_image
from i2i.metrics import frechet_distance, load_inception
from i2i.tasks.cyclegan import ImagePool
from i2i.trainer import Trainer
from i2i.training.data import first_items
from i2i.training.samples import write_samples


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory) -> Path:
    from i2i.data.demo import make_unpaired_demo

    return make_unpaired_demo(tmp_path_factory.mktemp("unpaired"), size=48, crops_per_photo=3, seed=0)


def tiny_cyclegan(root: Path, out: Path, **train) -> dict:
    return {
        "task": {
            "name": "cyclegan",
            "generator": {"name": "resnet", "num_blocks": 2, "base_channels": 8},
            "discriminator": {"name": "patchgan", "base_channels": 8, "n_layers": 2},
            "lr": 0.002,
            "pool_size": 4,
        },
        "data": {"root": str(root), "val_split": "test", "load_size": 36, "crop_size": 32, "batch_size": 2, "num_workers": 0, "val_items": 4},
        "schedule": {"policy": "constant"},
        "train": {"output_dir": str(out), "name": "run", "log_every": 5, "sample_every": 1000, "val_every": 1000, "checkpoint_every": 1000, **train},
        "seed": 0,
    }


def _fit(raw: dict) -> Trainer:
    trainer = Trainer(parse_config(raw))
    trainer.fit()
    return trainer


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_cycle_loss_falls_and_both_directions_translate(unpaired, tmp_path):
    trainer = _fit(tiny_cyclegan(unpaired, tmp_path, max_steps=40, val_every=20))
    records = _records(trainer.run_dir)
    cycle = [r["loss/cycle_A"] + r["loss/cycle_B"] for r in records if "loss/cycle_A" in r]
    assert len(cycle) == 8 and cycle[-1] < 0.7 * cycle[0], cycle
    val = [r["val/cycle_A"] for r in records if "val/cycle_A" in r]
    assert len(val) == 2 and all(k in records[-1] for k in ("val/idt_A", "val/idt_B"))
    # Both generators are exported, self-describing, with their direction.
    (_, info_a), (_, info_b) = load_generator(trainer.run_dir / "G_A.safetensors"), load_generator(trainer.run_dir / "G_B.safetensors")
    assert (info_a.direction, info_b.direction) == ("AtoB", "BtoA") and info_a.task == "cyclegan"
    # The sample grid has a row group per direction: 2 val items x 2 groups = 4 rows.
    write_samples(trainer, first_items(trainer.val_loader, count=2))
    (grid_path,) = sorted((trainer.run_dir / "samples").glob("*.png"))[-1:]
    assert read_image(grid_path).shape[:2] == (4 * 32, 3 * 32)

    runner = CliRunner()
    photo = tmp_path / "photo.png"
    write_image(photo, read_image(sorted((unpaired / "testA").iterdir())[0])[:30, :42])
    for direction in ("AtoB", "BtoA"):
        result = runner.invoke(main, ["translate", "--model", str(trainer.run_dir), "--direction", direction, str(photo), str(tmp_path / direction)])
        assert result.exit_code == 0, result.output
        assert read_image(tmp_path / direction / "photo.png").shape == (30, 42, 3)
    a, b = read_image(tmp_path / "AtoB" / "photo.png"), read_image(tmp_path / "BtoA" / "photo.png")
    assert not np.array_equal(a, b)
    result = runner.invoke(main, ["translate", "--model", str(trainer.run_dir), str(photo), str(tmp_path / "x")])
    assert result.exit_code == 1 and "--direction" in result.output


def test_resume_is_exact_with_the_image_pools(unpaired, tmp_path):
    straight = _fit(tiny_cyclegan(unpaired, tmp_path / "a", max_steps=8))
    _fit(tiny_cyclegan(unpaired, tmp_path / "b", max_steps=5))
    resumed = Trainer(resume=tmp_path / "b" / "run", overrides=("train.max_steps=8",))
    resumed.fit()
    a = load_training_state(straight.run_dir / "checkpoints" / "latest.pt")
    b = load_training_state(resumed.run_dir / "checkpoints" / "latest.pt")
    for net, tensors in a["networks"].items():
        for key, value in tensors.items():
            assert torch.equal(value, b["networks"][net][key]), f"{net}.{key}"
    assert len(a["task"]["pool_A"]) == 4
    assert all(torch.equal(x, y) for x, y in zip(a["task"]["pool_A"], b["task"]["pool_A"]))


def test_image_pool_behaves_as_specified():
    random.seed(0)
    assert ImagePool(0).query(torch.ones(3, 1, 2, 2)).eq(1).all()  # size 0: pass-through
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the inputs come back and are stored
    assert len(pool.images) == 4
    swapped = 0
    for i in range(200):
        value = 100.0 + i
        out = pool.query(torch.full((1, 1, 1, 1), value))
        stored = [float(t) for t in pool.images]
        assert len(stored) == 4
        if float(out) != value:  # an older image came back and the new one took its place
            swapped += 1
            assert value in stored and float(out) not in stored
    assert 70 < swapped < 130  # about half


def test_unaligned_dataset_pairs_and_errors(unpaired, tmp_path):
    d = UnalignedDataset(unpaired, "train", load_size=36, crop_size=32, seed=3)
    n_a, n_b = len(d.files["a"]), len(d.files["b"])
    assert len(d) == max(n_a, n_b)
    draws = [[d[i]["path_b"] for i in range(len(d))] for epoch in (0, 1) if not d.set_epoch(epoch)]
    d.set_epoch(0)
    assert draws[0] == [d[i]["path_b"] for i in range(len(d))]  # deterministic per epoch
    assert draws[0] != draws[1]  # and drawn anew each epoch
    serial = UnalignedDataset(unpaired, "train", serial_batches=True)
    assert [Path(serial[i]["path_b"]).name for i in range(n_b)] == [p.name for p in serial.files["b"]]
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    with pytest.raises(DataError, match="Domain A has 0 image"):
        UnalignedDataset(tmp_path, "train")
    with pytest.raises(DataError, match="testA"):
        UnalignedDataset(tmp_path, "test")


def test_gray_domain_to_colour_and_the_identity_error(unpaired, tmp_path):
    raw = tiny_cyclegan(unpaired, tmp_path, max_steps=2)
    raw["task"]["in_channels"] = 1
    with pytest.raises(ValueError, match="lambda_identity=0"):
        Trainer(parse_config(raw)).setup_task()
    raw["task"]["lambda_identity"] = 0.0
    trainer = _fit(raw)
    model, info = load_generator(trainer.run_dir / "G_A.safetensors")
    assert info.kwargs["in_channels"] == 1 and info.kwargs["out_channels"] == 3
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)


def test_fid_with_an_injected_feature_network(unpaired, tmp_path):
    trainer = Trainer(parse_config(tiny_cyclegan(unpaired, tmp_path, max_steps=1)))
    task = trainer.setup_task()
    torch.manual_seed(0)
    task.fid_network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    trainer.fit()
    last = _records(trainer.run_dir)[-1]
    assert last["val/fid_A"] >= 0 and last["val/fid_B"] >= 0
    x = torch.randn(64, 3)
    assert abs(frechet_distance(x, x)) < 1e-6 and frechet_distance(x, x + 2) == pytest.approx(12.0, rel=1e-3)


def test_missing_inception_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="inception_v3_google-0cc3c7bd.pth"):
        load_inception(str(tmp_path / "nowhere.pth"))


def test_recipes_parse():
    from i2i.config import load_config
    from i2i.recipes import resolve_config_path

    paper = load_config(resolve_config_path("cyclegan_horse2zebra"))
    assert paper.task.gan_mode == "lsgan" and paper.task.lambda_cycle == 10 and paper.task.pool_size == 50
    assert (paper.schedule.n_epochs, paper.schedule.n_epochs_decay) == (100, 100)
    assert load_config(resolve_config_path("cyclegan_demo")).task.generator["name"] == "resnet_6blocks"


def test_a_generator_file_refuses_the_other_direction(unpaired, tmp_path):
    trainer = _fit(tiny_cyclegan(unpaired, tmp_path, max_steps=1))
    assert load_generator(trainer.run_dir / "G_B.safetensors", direction="BtoA")[1].direction == "BtoA"
    with pytest.raises(ValueError, match="translates AtoB, not BtoA"):
        load_generator(trainer.run_dir / "G_A.safetensors", direction="BtoA")


def test_a_run_saved_with_the_old_cycle_weight_keys_resumes(unpaired, tmp_path):
    # Checkpoints written before lambda_A/lambda_B became lambda_cycle hold the old keys.
    from i2i.checkpoint import save_training_state

    trainer = _fit(tiny_cyclegan(unpaired, tmp_path, max_steps=2))
    latest = trainer.run_dir / "checkpoints" / "latest.pt"
    state = load_training_state(latest)
    raw = yaml.safe_load(state["config"])
    weight = raw["task"].pop("lambda_cycle")
    raw["task"].update(lambda_A=weight, lambda_B=weight)
    save_training_state(latest, {**state, "config": yaml.safe_dump(raw, sort_keys=False)})
    resumed = Trainer(resume=trainer.run_dir, overrides=("train.max_steps=3",))
    resumed.fit()
    assert resumed.step == 3 and resumed.config.task.lambda_cycle == weight
