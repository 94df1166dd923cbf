"""The public surface: ``i2i.__all__``, ``i2i.load``, the error hierarchy and device resolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import i2i
from i2i.device import resolve_device, resolve_precision
from i2i.errors import (
    ConfigError,
    DataError,
    DeviceError,
    I2IError,
    ModelError,
    TrainingError,
    UsageError,
    VideoError,
    format_problems,
)

PUBLIC_API = {
    "load", "Translator", "create_model", "list_models", "model_signature", "register_model",
    "load_generator", "save_generator", "GeneratorInfo", "read_image", "write_image", "Trainer",
    "load_config", "I2IError", "UsageError", "ConfigError", "DeviceError", "DataError", "ModelError",
    "VideoError", "TrainingError",
}


def test_public_api_is_exactly_the_documented_names_and_each_resolves() -> None:
    # Adding or removing a public name is a decision: change PUBLIC_API with it.
    assert set(i2i.__all__) == PUBLIC_API
    for name in i2i.__all__:
        assert getattr(i2i, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        i2i.no_such_name  # noqa: B018


def test_load_gives_a_translator_for_the_bundled_model() -> None:
    translator = i2i.load("x4", device="cpu")
    image = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    output = translator.translate_image(image)
    assert output.shape == (48, 40, 3) and output.dtype == np.uint8
    direct = i2i.Translator.from_file("x4", device="cpu").translate_image(image)
    assert np.array_equal(output, direct)


def test_load_refuses_a_device_and_a_model_that_do_not_exist(tmp_path) -> None:
    with pytest.raises(DeviceError, match="device 'foo' is not a device"):
        i2i.load("x4", device="foo")
    with pytest.raises(ModelError, match="missing.safetensors"):
        i2i.load(tmp_path / "missing.safetensors", device="cpu")


def test_errors_form_one_hierarchy_with_exit_codes() -> None:
    for cls in (UsageError, ConfigError, DeviceError, DataError, ModelError, VideoError, TrainingError):
        assert issubclass(cls, I2IError)
    assert {cls.exit_code for cls in (UsageError, ConfigError, DeviceError)} == {2}
    assert {cls.exit_code for cls in (DataError, ModelError, VideoError, TrainingError)} == {1}
    # Python callers keep the built-in classes they would expect.
    assert issubclass(ConfigError, ValueError) and issubclass(TrainingError, RuntimeError)


def test_problem_lists_are_cut_after_the_limit() -> None:
    items = [f"file{i}.png" for i in range(25)]
    text = format_problems(items)
    assert text.splitlines()[0] == "  file0.png"
    assert len(text.splitlines()) == 21 and text.endswith("... and 5 more")
    assert format_problems(["a"], bullet="- ") == "  - a"


def test_device_errors_name_the_option_the_user_typed() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(DeviceError, match=r"^train.device 'foo' is not a device"):
        resolve_device("foo", option="train.device")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"--device 'cuda:1' needs CUDA.*--device cpu"):
            resolve_device("cuda:1")
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        with pytest.raises(DeviceError, match="MPS backend is not available"):
            resolve_device("mps")


def test_auto_precision_says_what_it_means_per_purpose() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, training=True) is None
    assert resolve_precision("auto", cpu, training=False) is None
    assert resolve_precision("bf16", cpu, training=False) == torch.bfloat16
    with pytest.raises(DeviceError, match="--precision 'fp8' is not a precision"):
        resolve_precision("fp8", cpu, training=False)


def test_the_cli_shows_bugs_with_their_traceback_and_i2i_errors_as_one_line(monkeypatch) -> None:
    from click.testing import CliRunner

    import i2i.models
    from i2i.cli import main

    def broken() -> list[str]:
        raise KeyError("a bug, not a user mistake")

    monkeypatch.setattr(i2i.models, "list_models", broken)
    result = CliRunner().invoke(main, ["models"])
    assert isinstance(result.exception, KeyError)  # not swallowed into an "Error:" line

    def refused() -> list[str]:
        raise ModelError("the registry is closed; reopen it")

    monkeypatch.setattr(i2i.models, "list_models", refused)
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 1 and result.output == "Error: the registry is closed; reopen it\n"


def test_auto_device_takes_apple_mps_when_there_is_no_cuda(monkeypatch):
    """On Apple silicon `auto` runs on the GPU (MPS), not on the CPU; CUDA still comes first."""
    import i2i.device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(i2i.device, "mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(i2i.device, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="MPS backend is not available here; use --device cpu"):
        resolve_device("mps")
