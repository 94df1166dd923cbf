"""The ESRGAN / Real-ESRGAN family: the models' own contracts, and every key layout of their files
(built here from i2i's own models, so nothing outside the project is needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from i2i.errors import ModelError
from i2i.foreign import build_imported, import_checkpoint, import_state_dict
from i2i.models import create_model


def _same_output(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor):
    """Import ``state``, check the rebuilt model computes what ``model`` does, return the import."""
    imported = import_state_dict(state)
    with torch.no_grad():
        expected = model.eval()(x)
        got = build_imported(imported)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-6)
    return imported


# --- models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "multiple", "first_in"), [(4, 1, 3), (2, 2, 12), (1, 4, 48)])
def test_rrdbnet_scales_unshuffle_the_input(scale: int, multiple: int, first_in: int) -> None:
    model = create_model("rrdbnet", scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    assert model.scale == scale and model.size_multiple == multiple
    assert model.conv_first.in_channels == first_in
    assert model(torch.rand(2, 3, 8, 12)).shape == (2, 3, 8 * scale, 12 * scale)
    assert model.value_range == (0.0, 1.0)


def test_rrdbnet_refuses_sizes_and_scales_it_cannot_do() -> None:
    with pytest.raises(ModelError, match="divisible by 4"):
        create_model("rrdbnet", scale=1, num_feat=4, num_block=0)(torch.rand(1, 3, 6, 8))
    with pytest.raises(ModelError, match="scale 3"):
        create_model("rrdbnet", scale=3)
    with pytest.raises(ModelError, match="scale 8"):
        create_model("rrdbnet", scale=8)
    model = create_model("rrdbnet", scale=8, num_upsample=3, num_feat=4, num_block=0)
    assert model.size_multiple == 1 and model(torch.rand(1, 3, 3, 5)).shape == (1, 3, 24, 40)


def test_rrdbnet_presets_are_real_esrgans_sizes() -> None:
    with torch.device("meta"):
        x4plus = create_model("rrdbnet_x4plus")
        anime = create_model("rrdbnet_anime_6b", scale=2)
    assert len(x4plus.body) == 23 and x4plus.conv_first.out_channels == 64
    assert x4plus.body[0].rdb1.conv1.out_channels == 32
    assert len(anime.body) == 6 and anime.scale == 2
    with pytest.raises(ModelError, match="num_block"):
        create_model("rrdbnet_x4plus", num_block=3)


def test_rrdbnet_translator_pads_odd_sizes_and_crops_back(tmp_path: Path) -> None:
    from i2i.checkpoint import GeneratorInfo, save_generator
    from i2i.inference.translator import Translator

    torch.manual_seed(0)
    model = create_model("rrdbnet", scale=1, num_feat=4, num_block=1, num_grow_ch=4).eval()
    info = GeneratorInfo(model="rrdbnet", kwargs=model.model_spec["kwargs"], value_range=(0.0, 1.0), scale=1, task="srgan")
    save_generator(tmp_path / "x1.safetensors", model, info)
    translator = Translator.from_file(tmp_path / "x1.safetensors")
    assert translator.size_multiple == 4
    image = np.random.default_rng(0).integers(0, 256, (13, 7, 3), dtype=np.uint8)
    assert translator.translate_image(image).shape == (13, 7, 3)


@pytest.mark.parametrize("activation", ["prelu", "relu", "leaky_relu"])
def test_srvgg_activations(activation: str) -> None:
    model = create_model("srvgg_compact", num_feat=8, num_conv=3, activation=activation, scale=3)
    prelus = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == (4 if activation == "prelu" else 0)
    assert all(p.weight.shape == (8,) for p in prelus)
    assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 15, 18)


def test_srvgg_adds_the_nearest_upsampled_input() -> None:
    model = create_model("srvgg_compact", num_feat=4, num_conv=1)
    torch.nn.init.zeros_(model.body[-1].weight)
    torch.nn.init.zeros_(model.body[-1].bias)
    x = torch.rand(1, 3, 4, 5)
    with torch.no_grad():
        assert torch.equal(model(x), x.repeat_interleave(4, -2).repeat_interleave(4, -1))


def test_srvgg_refuses_bad_arguments() -> None:
    with pytest.raises(ModelError, match="activation"):
        create_model("srvgg_compact", activation="gelu")
    with pytest.raises(ModelError, match="in_channels"):
        create_model("srvgg_compact", in_channels=1, out_channels=3)


def test_unet_discriminator_options() -> None:
    sn = create_model("unet_discriminator", num_feat=4)
    parametrized = [name for name, m in sn.named_modules() if torch.nn.utils.parametrize.is_parametrized(m, "weight")]
    assert parametrized == [f"conv{i}" for i in range(1, 9)]
    plain = create_model("unet_discriminator", num_feat=4, spectral_norm=False, skip_connection=False)
    assert "conv1.weight" in plain.state_dict() and plain.conv1.bias is None
    assert plain(torch.rand(1, 3, 8, 16)).shape == (1, 1, 8, 16)
    with pytest.raises(ModelError, match="divisible by 8"):
        plain(torch.rand(1, 3, 12, 16))


# --- file layouts ---------------------------------------------------------------------------------


def _old_layout(state: dict[str, torch.Tensor], num_block: int, num_upsample: int) -> dict[str, torch.Tensor]:
    """i2i's RRDBNet names -> the original ESRGAN repository's ``model.N`` names."""
    n = num_upsample
    out = {}
    for key, value in state.items():
        prefix, param = key.rsplit(".", 1)
        parts = prefix.split(".")
        if parts[0] == "body":
            new = f"model.1.sub.{parts[1]}.{parts[2].upper()}.{parts[3]}.0"
        elif prefix.startswith("conv_up"):
            new = f"model.{3 * int(prefix[len('conv_up'):])}"
        else:
            new = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}",
                   "conv_hr": f"model.{3 * n + 2}", "conv_last": f"model.{3 * n + 4}"}[prefix]
        out[f"{new}.{param}"] = value
    return out


def _trunk_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """i2i's RRDBNet names -> the ESRGAN repository's later ``RRDB_trunk`` names."""
    out = {}
    for key, value in state.items():
        key = key.replace("conv_body", "trunk_conv").replace("conv_hr", "HRconv").replace("conv_up", "upconv")
        if key.startswith("body."):
            key = "RRDB_trunk." + key[len("body."):]
        for k in "123":
            key = key.replace(f".rdb{k}.", f".RDB{k}.")
        out[key] = value
    return out


@pytest.mark.parametrize(("num_upsample", "scale"), [(0, 1), (1, 2), (2, 4), (3, 8)])
def test_original_esrgan_layout_reads_the_scale_from_its_upsampling_convs(num_upsample: int, scale: int) -> None:
    torch.manual_seed(0)
    model = create_model("rrdbnet", scale=scale, num_upsample=num_upsample, num_feat=8, num_block=2, num_grow_ch=4)
    state = _old_layout(model.state_dict(), 2, num_upsample)
    imported = _same_output(model, state, torch.rand(1, 3, 5, 6))
    assert imported.model == "rrdbnet" and imported.source.startswith("ESRGAN RRDBNet (original")
    assert imported.kwargs == {**model.model_spec["kwargs"], "in_channels": 3, "out_channels": 3}


def test_original_esrgan_layout_with_unshuffled_input() -> None:
    # Real-ESRGAN's x2plus converted to the old layout: model.0 takes 12 channels.
    torch.manual_seed(0)
    model = create_model("rrdbnet", scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    imported = _same_output(model, _old_layout(model.state_dict(), 1, 2), torch.rand(1, 3, 6, 8))
    assert imported.kwargs["scale"] == 2 and imported.kwargs["in_channels"] == 3


def test_pixel_shuffle_esrgan_variant_is_refused_clearly() -> None:
    model = create_model("rrdbnet", num_feat=8, num_block=1, num_grow_ch=4)
    state = _old_layout(model.state_dict(), 1, 2)
    # upsample_mode="pixelshuffle": conv, shuffle, act per stage, so the convs sit at model.2, model.5.
    state = {key.replace("model.3.", "model.2.").replace("model.6.", "model.5."): value for key, value in state.items()}
    with pytest.raises(ModelError, match="Pixel-shuffle"):
        import_state_dict(state)


def test_esrgan_trunk_layout() -> None:
    torch.manual_seed(0)
    model = create_model("rrdbnet", num_feat=8, num_block=2, num_grow_ch=4)
    imported = _same_output(model, _trunk_layout(model.state_dict()), torch.rand(1, 3, 5, 6))
    assert imported.source.startswith("ESRGAN RRDBNet (RRDB_trunk") and imported.kwargs["num_block"] == 2


@pytest.mark.parametrize(("scale", "channels"), [(1, 3), (2, 1), (4, 1)])
def test_real_esrgan_rrdbnet_scale_from_conv_first(scale: int, channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(
        "rrdbnet", scale=scale, in_channels=channels, out_channels=channels, num_feat=8, num_block=1, num_grow_ch=4
    )
    imported = _same_output(model, {"params_ema": model.state_dict()}, torch.rand(1, channels, 8, 4))
    assert (imported.kwargs["scale"], imported.kwargs["in_channels"]) == (scale, channels)
    assert imported.source == "Real-ESRGAN RRDBNet (params_ema)"


def test_srvgg_without_prelu_weights_is_read_as_relu() -> None:
    torch.manual_seed(0)
    model = create_model("srvgg_compact", num_feat=8, num_conv=2, activation="relu", scale=2)
    imported = _same_output(model, {"params": model.state_dict()}, torch.rand(1, 3, 5, 6))
    assert imported.kwargs["activation"] == "relu" and imported.kwargs["scale"] == 2
    assert "assumed ReLU" in imported.source


def test_srvgg_with_a_single_prelu_slope_is_refused() -> None:
    state = create_model("srvgg_compact", num_feat=8, num_conv=1).state_dict()
    state["body.1.weight"] = torch.zeros(1)
    with pytest.raises(ModelError, match="PReLU"):
        import_state_dict(state)


def _legacy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state_dict with the spectral-norm names of ``torch.nn.utils.spectral_norm``."""
    names = {"parametrizations.weight.original": "weight_orig", "parametrizations.weight.0._u": "weight_u",
             "parametrizations.weight.0._v": "weight_v"}
    out = {}
    for key, value in model.state_dict().items():
        for new, old in names.items():
            key = key.replace(new, old)
        out[key] = value
    return out


@pytest.mark.parametrize("spectral", [True, False])
def test_unet_discriminator_files(spectral: bool) -> None:
    torch.manual_seed(0)
    model = create_model("unet_discriminator", num_feat=4, spectral_norm=spectral)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        model.train()(x)  # a power iteration, so the stored vectors are not the initial ones
    imported = _same_output(model, {"params": _legacy(model)}, x)
    assert imported.model == "unet_discriminator" and imported.kwargs["spectral_norm"] is spectral


def test_torch_spectral_norm_tensors_give_the_same_weights_in_eval_mode() -> None:
    # A conv normalised by torch.nn.utils.spectral_norm, as the reference code does, after a
    # training step; its tensors loaded into i2i's parametrization give the same eval() output.
    torch.manual_seed(0)
    reference = torch.nn.utils.spectral_norm(torch.nn.Conv2d(4, 4, 3, padding=1, bias=False))
    x = torch.rand(1, 4, 8, 8)
    reference(x)
    reference.eval()
    state = _legacy(create_model("unet_discriminator", num_feat=4))
    state.update({f"conv7.{key}": value for key, value in reference.state_dict().items()})
    rebuilt = build_imported(import_state_dict(state))
    with torch.no_grad():
        assert torch.allclose(rebuilt.conv7(x), reference(x), atol=1e-6)
        assert torch.allclose(rebuilt.conv7(x), reference(x), atol=1e-6)  # no power iteration in eval()


def test_rrdbnet_file_loads_as_an_sr_generator(tmp_path: Path) -> None:
    from i2i.checkpoint import load_generator

    model = create_model("rrdbnet", scale=2, num_feat=4, num_block=1, num_grow_ch=4)
    torch.save({"params_ema": model.state_dict()}, tmp_path / "RealESRGAN_x2plus.pth")
    loaded, info = load_generator(tmp_path / "RealESRGAN_x2plus.pth")
    assert (info.model, info.scale, info.task, tuple(info.value_range)) == ("rrdbnet", 2, "srgan", (0.0, 1.0))
    assert import_checkpoint(tmp_path / "RealESRGAN_x2plus.pth").kwargs["num_feat"] == 4
