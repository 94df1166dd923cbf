"""Run configs: the task registry, model sections, renamed keys, weight initialisation from the
config, and `i2i train` reporting config mistakes as one line (with --dry-run writing nothing)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

import i2i.config as config_module
from i2i.cli import main
from i2i.config import ConfigError, TaskConfig, parse_config, register_task, upgrade_saved_config
from i2i.tasks import TASKS
from i2i.tasks.cyclegan import CycleGANConfig


# --- the task registry ------------------------------------------------------------------------------
def test_parsing_needs_the_tasks_registered_and_config_never_imports_them() -> None:
    code = (
        "import sys, i2i.config as c\n"
        "assert 'i2i.tasks' not in sys.modules\n"
        "try:\n    c.parse_config({'task': 'pix2pix'})\nexcept RuntimeError as e:\n    print(e)\n"
        "import i2i.tasks\n"
        "print(c.parse_config({'task': 'pix2pix'}).task.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["No tasks are registered; import i2i.tasks before parsing a run config.", "pix2pix"]


def test_a_registered_task_config_parses_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class ToyConfig(TaskConfig):
        name: str = "toy"
        strength: float = 1.0

        def validate(self) -> None:
            if self.strength < 0:
                raise ConfigError("task.strength must be >= 0.")

    monkeypatch.setattr(config_module, "_TASK_CONFIGS", dict(config_module._TASK_CONFIGS))
    register_task("toy", ToyConfig)
    assert parse_config({"task": {"name": "toy", "strength": 2}}).task == ToyConfig(strength=2.0)
    with pytest.raises(ConfigError, match="strength must be"):
        parse_config({"task": {"name": "toy", "strength": -1}})
    with pytest.raises(ConfigError, match=r"expected one of .*pix2pix.*toy") as error:
        parse_config({"task": "tyo"})
    assert "Did you mean 'toy'" in str(error.value)


# --- task sections ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "task, message",
    [
        ({"name": "pix2pix", "generator": {"foo": 1}}, r"Unknown config key task\.generator\.foo\..*base_channels.*Remove the key"),
        ({"name": "cyclegan", "discriminator": {"n_layer": 2}}, r"task\.discriminator\.n_layer\. Did you mean 'n_layers'"),
        ({"name": "pix2pix", "generator": {"in_channels": 1}}, r"task\.generator\.in_channels is set by the task from task\.in_channels"),
        ({"name": "srgan", "generator": {"scale": 2}}, r"task\.generator\.scale is set by the task from task\.scale"),
        ({"name": "pix2pix", "generator": {"name": "unet_265"}}, r"task\.generator\.name is 'unet_265'.*Did you mean 'unet_256'"),
        ({"name": "pix2pix", "generator": {"base_channels": "wide"}}, r"task\.generator\.base_channels must be an integer"),
        ({"name": "srgan", "stage": "bogus"}, r"task\.stage is 'bogus'; expected one of psnr, gan"),
        ({"name": "srgan", "perceptual_layer": "conv9_9"}, r"task\.perceptual_layer"),
        ({"name": "pix2pix", "gan_mode": "lsgam"}, r"task\.gan_mode is 'lsgam'.*Did you mean 'lsgan'"),
        ({"name": "cyclegan", "init_type": "uniform"}, r"task\.init_type"),
        ({"name": "cyclegan", "in_channels": 1}, r"task\.lambda_identity=0"),
    ],
)
def test_task_sections_are_checked_when_the_config_parses(task: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"task": task})


def test_cyclegan_old_cycle_weights_are_refused_with_the_new_name() -> None:
    for old in ("lambda_A", "lambda_B"):
        with pytest.raises(ConfigError, match=rf"task\.{old} is now called task\.lambda_cycle"):
            parse_config({"task": {"name": "cyclegan", old: 10.0}})
    assert parse_config({"task": {"name": "cyclegan", "lambda_cycle": 5}}).task.lambda_cycle == 5.0


def test_configs_saved_with_the_old_cycle_weights_are_mapped() -> None:
    saved = {"task": {"name": "cyclegan", "lambda_A": 7.0, "lambda_B": 7.0, "lambda_identity": 0.5}}
    assert parse_config(upgrade_saved_config(saved)).task == CycleGANConfig(lambda_cycle=7.0)
    different = {"task": {"name": "cyclegan", "lambda_A": 5.0, "lambda_B": 10.0}}
    with pytest.raises(ConfigError, match="--set task.lambda_cycle=VALUE"):
        upgrade_saved_config(different)
    chosen = upgrade_saved_config({"task": {**different["task"], "lambda_cycle": 8.0}})
    assert parse_config(chosen).task.lambda_cycle == 8.0


# --- one owner of initial weights --------------------------------------------------------------
def _conv_weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.numel() > 500]


def test_networks_start_as_their_task_config_says() -> None:
    torch.manual_seed(0)
    raw = {"name": "pix2pix", "generator": {"name": "unet", "num_downs": 5, "base_channels": 8}, "init_gain": 0.5}
    task = TASKS["pix2pix"](parse_config({"task": raw}))
    for name in ("G", "D"):
        weights = torch.cat([w.flatten() for w in _conv_weights(task.networks[name])])
        assert weights.std().item() == pytest.approx(0.5, rel=0.05), name

    sr = {
        "name": "srgan",
        "generator": {"name": "srresnet", "base_channels": 16, "num_blocks": 2, "norm": "none"},
        "discriminator": {"name": "vgg_discriminator", "base_channels": 8, "input_size": 0},
        "discriminator_init_gain": 0.3,
        "lambda_perceptual": 0.0,
    }
    config = parse_config({"task": sr})
    assert config.task.generator_gain() == 0.1  # SRResNet's rule without normalisation
    assert parse_config({"task": "srgan"}).task.generator_gain() == 1.0  # with batch norm
    task = TASKS["srgan"](config)
    d_weights = torch.cat([w.flatten() for w in _conv_weights(task.networks["D"])])
    assert d_weights.std().item() == pytest.approx(0.3, rel=0.05)  # the VGG discriminator too
    for w in _conv_weights(task.networks["G"]):
        fan_in = w[0].numel()
        assert w.std().item() == pytest.approx(0.1 * (2 / fan_in) ** 0.5, rel=0.15)


# --- the command line -------------------------------------------------------------------------------
def _invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output + repr(result.exception)
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, KeyError))
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def no_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if a Trainer is built or a task set up (the checks must come first)."""
    import i2i.trainer

    def refuse(*args, **kwargs):
        raise AssertionError("a Trainer was built or a task set up")

    monkeypatch.setattr(i2i.trainer.Trainer, "__init__", refuse)
    monkeypatch.setattr(i2i.trainer.Trainer, "setup_task", refuse)


def _recipe_args(tmp_path: Path, *more: str) -> list[str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    return ["train", "pix2pix_demo", "--set", f"data.root={tmp_path / 'data'}", "--set", f"train.output_dir={tmp_path / 'runs'}", *more]


def test_cli_unknown_model_argument_is_one_line(tmp_path: Path, no_trainer: None) -> None:
    result = _invoke(*_recipe_args(tmp_path, "--set", "task.generator.foo=1"))
    _one_line_error(result, 2, "task.generator.foo", "base_channels", "Remove the key")
    assert not (tmp_path / "runs").exists()


def test_cli_dry_run_checks_task_choices(tmp_path: Path, no_trainer: None) -> None:
    (tmp_path / "data").mkdir()
    result = _invoke("train", "srresnet_x4", "--set", f"data.root={tmp_path / 'data'}", "--set", "task.stage=bogus", "--dry-run")
    _one_line_error(result, 2, "task.stage", "'bogus'", "psnr, gan")
    result = _invoke(*_recipe_args(tmp_path, "--set", "task.gan_mode=bogus", "--dry-run"))
    _one_line_error(result, 2, "task.gan_mode")


def test_cli_missing_data_root_fails_before_anything_is_built(tmp_path: Path, no_trainer: None) -> None:
    missing = tmp_path / "nowhere"
    for extra in (("--dry-run",), ()):
        result = _invoke("train", "pix2pix_demo", "--set", f"data.root={missing}", "--set", f"train.output_dir={tmp_path / 'runs'}", *extra)
        _one_line_error(result, 2, "data.root", str(missing), "--set data.root=PATH")
    assert list(tmp_path.iterdir()) == []


def test_fit_checks_the_data_root_before_building_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from i2i.trainer import Trainer

    def refuse(self):
        raise AssertionError("networks built before the data root was checked")

    monkeypatch.setattr(Trainer, "setup_task", refuse)
    raw = {
        "task": "pix2pix",
        "data": {"root": str(tmp_path / "nowhere")},
        "train": {"device": "cpu", "output_dir": str(tmp_path / "runs"), "name": "run", "host_memory_cache": False},
    }
    with pytest.raises(ConfigError, match="data.root .*nowhere' does not exist"):
        Trainer(parse_config(raw)).fit()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("device", ["foo", "cuda:x"] + ([] if torch.backends.mps.is_available() else ["mps"]))
def test_cli_unusable_device_names_train_device(tmp_path: Path, device: str, no_trainer: None) -> None:
    result = _invoke(*_recipe_args(tmp_path, "--set", f"train.device={device}", "--dry-run"))
    _one_line_error(result, 2, "train.device", repr(device))


def test_cli_dry_run_prints_the_config_and_writes_nothing(tmp_path: Path, no_trainer: None) -> None:
    result = _invoke(*_recipe_args(tmp_path, "--set", "train.device=cpu", "--set", "task.lambda_l1=50", "--dry-run"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    resolved = yaml.safe_load(result.output)
    assert resolved["task"]["lambda_l1"] == 50.0 and resolved["data"]["root"] == str(tmp_path / "data")
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and not any((tmp_path / "data").iterdir())
    assert not torch.distributed.is_initialized()
