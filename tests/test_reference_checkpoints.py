"""Foreign checkpoints load with no flags and compute what the original code computes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from i2i.errors import ModelError
from i2i.foreign import (
    FORMATS,
    ImportedModel,
    build_imported,
    import_checkpoint,
    import_state_dict,
    read_state_dict,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference-checkpoints"

if not (REFERENCE / "index.json").is_file():
    pytest.skip(f"reference checkpoints not found at {REFERENCE}", allow_module_level=True)

INDEX = json.loads((REFERENCE / "index.json").read_text())
JUNYANZ = [entry["name"] for entry in INDEX if entry["name"].startswith("junyanz_")]


def _io(name: str) -> dict[str, torch.Tensor]:
    return torch.load(REFERENCE / f"{name}.io.pt", map_location="cpu", weights_only=True)


def _forward(imported: ImportedModel, x: torch.Tensor) -> torch.Tensor:
    model = build_imported(imported)
    assert not model.training
    with torch.no_grad():
        return model(x)


def _assert_matches_reference(name: str, *, value_range: tuple[float, float]):
    """Import the case's file with no flags; its range and its output on the case's input must be the reference's."""
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert imported.value_range == value_range
    io = _io(name)
    out = _forward(imported, io["input"])
    assert out.shape == io["output"].shape
    assert torch.allclose(out, io["output"], atol=1e-4)
    return imported


def test_all_cases_found() -> None:
    assert len(JUNYANZ) >= 8


@pytest.mark.parametrize("name", JUNYANZ)
def test_output_matches_reference(name: str) -> None:
    imported = _assert_matches_reference(name, value_range=(-1.0, 1.0))
    assert imported.source.startswith("pytorch-CycleGAN-and-pix2pix")


@pytest.mark.parametrize(
    ("name", "model", "expected"),
    [
        (
            "junyanz_unet256_batch_dropout_ngf8",
            "unet_256",
            {
                "in_channels": 3,
                "out_channels": 3,
                "base_channels": 8,
                "norm": "batch",
                "dropout": True,
                "bias": False,
            },
        ),
        ("junyanz_unet128_instance_ngf8", "unet_128", {"base_channels": 8, "norm": "instance", "bias": True}),
        (
            "junyanz_resnet6_instance_ngf8_1to3ch",
            "resnet_6blocks",
            {"in_channels": 1, "out_channels": 3, "base_channels": 8, "norm": "instance", "dropout": False},
        ),
        (
            "junyanz_resnet9_instance_legacy_runningstats_ngf8",
            "resnet_9blocks",
            {"norm": "instance", "padding": "reflect"},
        ),
        (
            "junyanz_patchgan_basic_batch_ndf8",
            "patchgan",
            {"in_channels": 6, "n_layers": 3, "norm": "batch", "bias": False},
        ),
        (
            "junyanz_patchgan_n5_instance_ndf8",
            "patchgan",
            {"in_channels": 3, "n_layers": 5, "norm": "instance", "bias": True},
        ),
        (
            "junyanz_pixel_batch_ndf8",
            "pixel_discriminator",
            {"in_channels": 6, "base_channels": 8, "norm": "batch", "bias": False},
        ),
    ],
)
def test_inferred_architecture(name: str, model: str, expected: dict) -> None:
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert imported.model == model
    assert {key: imported.kwargs[key] for key in expected} == expected


def test_legacy_instance_norm_stats_are_dropped() -> None:
    legacy = read_state_dict(REFERENCE / "junyanz_resnet9_instance_legacy_runningstats_ngf8.pth")
    assert any(key.endswith("running_mean") for key in legacy)
    imported = import_state_dict(legacy)
    assert not any("running" in key or "num_batches" in key for key in imported.state_dict)
    # Same architecture and weights as the current-format file of the same family.
    current = import_checkpoint(REFERENCE / "junyanz_resnet9_instance_ngf8.pth")
    assert imported.model == current.model and imported.kwargs == current.kwargs
    assert imported.state_dict.keys() == current.state_dict.keys()


@pytest.mark.parametrize("name", ["junyanz_unet128_instance_ngf8", "junyanz_patchgan_basic_batch_ndf8"])
def test_data_parallel_prefix_is_stripped(name: str, tmp_path: Path) -> None:
    state = read_state_dict(REFERENCE / f"{name}.pth")
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    imported = import_checkpoint(path)
    plain = import_state_dict(state)
    assert (imported.model, imported.kwargs) == (plain.model, plain.kwargs)
    assert imported.state_dict.keys() == plain.state_dict.keys()
    io = _io(name)
    assert torch.allclose(_forward(imported, io["input"]), io["output"], atol=1e-4)


def test_unknown_format_names_keys_and_supported_formats() -> None:
    state = {"encoder.layer1.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(4)}
    with pytest.raises(ValueError) as info:
        import_state_dict(state)
    message = str(info.value)
    assert "encoder.layer1.weight" in message
    for fmt in FORMATS:
        assert fmt.name in message
    assert "UnetGenerator" in message and "ResnetGenerator" in message


def test_unknown_format_from_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mystery.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="mystery.pth.*fc.weight"):
        import_checkpoint(path)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="broken.pth"):
        read_state_dict(path)
    # ModelError (an I2IError the CLI reports as one line); it was FileNotFoundError.
    with pytest.raises(ModelError, match="absent.pth"):
        read_state_dict(tmp_path / "absent.pth")


def test_truncated_checkpoint_explains_the_mismatch() -> None:
    state = read_state_dict(REFERENCE / "junyanz_patchgan_basic_batch_ndf8.pth")
    del state["model.6.weight"]  # a BatchNorm weight without its layer's other tensors
    with pytest.raises(ValueError, match="NLayerDiscriminator"):
        import_state_dict(state)


def _renumber_resnet_blocks(state: dict[str, torch.Tensor], moves: dict[int, int]) -> dict[str, torch.Tensor]:
    """Move ``model.N.conv_block.I.*`` to index ``moves[I]``, as other ResnetBlock options lay it out."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 5 and parts[2] == "conv_block":
            parts[3] = str(moves[int(parts[3])])
        out[".".join(parts)] = value
    return out


def test_resnet_dropout_is_read_from_the_layout() -> None:
    # With use_dropout the reference block is pad conv norm relu DROPOUT pad conv norm: the second
    # conv moves from index 5 to 6. Dropout is the identity in eval(), so outputs are unchanged.
    name = "junyanz_resnet9_instance_ngf8"
    state = _renumber_resnet_blocks(read_state_dict(REFERENCE / f"{name}.pth"), {1: 1, 5: 6})
    imported = import_state_dict(state)
    assert imported.kwargs["dropout"] is True and imported.kwargs["padding"] == "reflect"
    io = _io(name)
    assert torch.allclose(_forward(imported, io["input"]), io["output"], atol=1e-4)


def test_resnet_zero_padding_is_read_from_the_layout() -> None:
    # padding_type="zero": no pad layers, so the block is conv norm relu conv norm.
    original = read_state_dict(REFERENCE / "junyanz_resnet9_instance_ngf8.pth")
    state = _renumber_resnet_blocks(original, {1: 0, 5: 3})
    imported = import_state_dict(state)
    assert imported.kwargs["padding"] == "zeros" and imported.kwargs["dropout"] is False
    model = build_imported(imported)
    assert model.blocks[0].conv1.padding_mode == "zeros"


# --- super-resolution: BasicSR MSRResNet and leftthomas/SRGAN Generator --------------------------

SR = [entry["name"] for entry in INDEX if entry["name"].startswith(("basicsr_", "leftthomas_"))]
SR_SCALES = {entry["name"]: entry["output_shape"][-1] // entry["input_shape"][-1] for entry in INDEX if entry["name"] in SR}


def test_all_sr_cases_found() -> None:
    assert any(name.startswith("basicsr_") for name in SR) and any(name.startswith("leftthomas_") for name in SR)


@pytest.mark.parametrize("name", SR)
def test_sr_output_matches_reference(name: str) -> None:
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert imported.model == "srresnet" and imported.value_range == (0.0, 1.0)
    assert imported.kwargs["scale"] == SR_SCALES[name]
    io = _io(name)
    out = _forward(imported, io["input"])
    assert out.shape == io["output"].shape
    assert torch.allclose(out, io["output"], atol=1e-4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "basicsr_msrresnet_x4_f64b16",
            {"scale": 4, "base_channels": 64, "num_blocks": 16, "norm": "none", "image_skip": "bilinear", "hr_conv": True},
        ),
        ("basicsr_msrresnet_x2_f32b4", {"scale": 2, "base_channels": 32, "num_blocks": 4, "head_kernel": 3}),
        (
            "leftthomas_srgan_generator_x4",
            {"scale": 4, "num_blocks": 5, "norm": "batch", "head_kernel": 9, "output_activation": "tanh", "body_conv": True},
        ),
    ],
)
def test_sr_inferred_architecture(name: str, expected: dict) -> None:
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert {key: imported.kwargs[key] for key in expected} == expected


def test_basicsr_x3_layout_is_recognised() -> None:
    # BasicSR's x3 has one upconv to 9x the features and PixelShuffle(3).
    state = read_state_dict(REFERENCE / "basicsr_msrresnet_x2_f32b4.pth")
    state["upconv1.weight"] = torch.zeros(32 * 9, 32, 3, 3)
    state["upconv1.bias"] = torch.zeros(32 * 9)
    imported = import_state_dict(state)
    assert imported.kwargs["scale"] == 3
    assert build_imported(imported)(torch.rand(1, 3, 5, 6)).shape == (1, 3, 15, 18)


def test_basicsr_wrappers_prefer_the_ema_weights(tmp_path: Path) -> None:
    name = "basicsr_msrresnet_x2_f32b4"
    state = read_state_dict(REFERENCE / f"{name}.pth")
    zeros = {key: torch.zeros_like(value) for key, value in state.items()}
    io = _io(name)
    torch.save({"params": state}, tmp_path / "params.pth")
    torch.save({"params": zeros, "params_ema": state}, tmp_path / "both.pth")
    plain = import_checkpoint(tmp_path / "params.pth")
    assert plain.source.endswith("(params)")
    assert torch.allclose(_forward(plain, io["input"]), io["output"], atol=1e-4)
    both = import_checkpoint(tmp_path / "both.pth")
    assert both.source.endswith("(params_ema)")
    assert torch.allclose(_forward(both, io["input"]), io["output"], atol=1e-4)


@pytest.mark.parametrize("name", SR)
def test_sr_files_translate_from_the_command_line(name: str, tmp_path: Path) -> None:
    import numpy as np
    from click.testing import CliRunner

    from i2i.checkpoint import load_generator
    from i2i.cli import main
    from i2i.data.io import read_image

    model, info = load_generator(REFERENCE / f"{name}.pth")
    assert info.scale == SR_SCALES[name] == model.scale and info.value_range == (0.0, 1.0)
    assert info.task == "srgan"
    out_path = tmp_path / "out.png"
    result = CliRunner().invoke(
        main, ["translate", "--model", str(REFERENCE / f"{name}.pth"), str(REFERENCE / f"{name}.input.png"), str(out_path)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = read_image(out_path).astype(np.int32)
    expected = (_io(name)["output"][0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.int32)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1


# --- ESRGAN / Real-ESRGAN: RRDBNet (two key layouts), SRVGGNetCompact, UNetDiscriminatorSN ---------

REALESRGAN = [entry["name"] for entry in INDEX if entry["name"].startswith(("realesr", "esrgan_"))]
REALESRGAN_GENERATORS = [name for name in REALESRGAN if (REFERENCE / f"{name}.input.png").is_file()]


def test_all_realesrgan_cases_found() -> None:
    assert {
        "realesrgan_rrdbnet_x4_f16b2g32",
        "realesrgan_rrdbnet_x2_f16b1g32",
        "esrgan_oldarch_rrdbnet_x4_f16b2g32",
        "realesrgan_srvgg_x4_f16c4",
        "realesrgan_unet_disc_sn_f16",
        "realesr_animevideov3_x4_real",
    } <= set(REALESRGAN)
    assert "realesrgan_unet_disc_sn_f16" not in REALESRGAN_GENERATORS


@pytest.mark.parametrize("name", REALESRGAN)
def test_realesrgan_output_matches_reference(name: str) -> None:
    _assert_matches_reference(name, value_range=(0.0, 1.0))


@pytest.mark.parametrize(
    ("name", "model", "expected"),
    [
        (
            "realesrgan_rrdbnet_x4_f16b2g32",
            "rrdbnet",
            {"scale": 4, "in_channels": 3, "out_channels": 3, "num_feat": 16, "num_block": 2, "num_grow_ch": 32},
        ),
        ("realesrgan_rrdbnet_x2_f16b1g32", "rrdbnet", {"scale": 2, "in_channels": 3, "num_feat": 16, "num_block": 1}),
        ("esrgan_oldarch_rrdbnet_x4_f16b2g32", "rrdbnet", {"scale": 4, "num_block": 2, "num_upsample": 2}),
        ("realesrgan_srvgg_x4_f16c4", "srvgg_compact", {"scale": 4, "num_feat": 16, "num_conv": 4, "activation": "prelu"}),
        ("realesr_animevideov3_x4_real", "srvgg_compact", {"scale": 4, "num_feat": 64, "num_conv": 16, "activation": "prelu"}),
        ("realesrgan_unet_disc_sn_f16", "unet_discriminator", {"num_feat": 16, "spectral_norm": True, "skip_connection": True}),
    ],
)
def test_realesrgan_inferred_architecture(name: str, model: str, expected: dict) -> None:
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert imported.model == model
    assert {key: imported.kwargs[key] for key in expected} == expected


def test_realesrgan_x2_file_uses_params_ema_over_params() -> None:
    # The file holds both, with different weights: the EMA weights give the reference output.
    name = "realesrgan_rrdbnet_x2_f16b1g32"
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    assert imported.source.endswith("(params_ema)")
    io = _io(name)
    plain = import_state_dict(read_state_dict(REFERENCE / f"{name}.pth")["params"])
    assert not torch.allclose(_forward(plain, io["input"]), io["output"], atol=1e-4)


def test_unet_discriminator_uses_the_stored_spectral_norm_vectors() -> None:
    name = "realesrgan_unet_disc_sn_f16"
    imported = import_checkpoint(REFERENCE / f"{name}.pth")
    stored = read_state_dict(REFERENCE / f"{name}.pth")["params"]
    assert torch.equal(imported.state_dict["conv1.parametrizations.weight.0._u"], stored["conv1.weight_u"])
    model = build_imported(imported)
    io = _io(name)
    with torch.no_grad():
        first, second = model(io["input"]), model(io["input"])
    assert torch.equal(first, second)  # eval(): no power iteration moves the vectors
    assert torch.equal(model.conv1.parametrizations.weight[0]._u, stored["conv1.weight_u"])


@pytest.mark.parametrize("name", REALESRGAN_GENERATORS)
def test_realesrgan_files_load_as_sr_generators(name: str) -> None:
    from i2i.checkpoint import load_generator

    entry = next(entry for entry in INDEX if entry["name"] == name)
    model, info = load_generator(REFERENCE / f"{name}.pth")
    scale = entry["output_shape"][-1] // entry["input_shape"][-1]
    assert info.scale == model.scale == scale and info.task == "srgan"
    assert info.value_range == (0.0, 1.0)
