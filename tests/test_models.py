"""Contract tests for every registered model: build, forward, backward, save/load."""
from __future__ import annotations

import inspect
import io

import pytest
import torch


from i2i import registry
from i2i.errors import ModelError
from i2i.models import create_model, list_models, model_signature

# Small but valid configurations: base_channels=4 and the smallest input each model accepts.
# (kwargs, input shape, output shape)
CASES: dict[str, tuple[dict, tuple[int, ...], tuple[int, ...]]] = {
    "unet": ({"num_downs": 4}, (2, 3, 32, 48), (2, 3, 32, 48)),
    "unet_128": ({}, (1, 3, 128, 128), (1, 3, 128, 128)),
    "unet_256": ({}, (1, 3, 256, 256), (1, 3, 256, 256)),
    "resnet": ({"num_blocks": 2}, (2, 3, 16, 20), (2, 3, 16, 20)),
    "resnet_6blocks": ({}, (2, 3, 16, 16), (2, 3, 16, 16)),
    "resnet_9blocks": ({}, (2, 3, 16, 16), (2, 3, 16, 16)),
    "patchgan": ({}, (2, 3, 64, 64), (2, 1, 6, 6)),
    "pixel_discriminator": ({}, (2, 3, 8, 8), (2, 1, 8, 8)),
    "srresnet": ({"num_blocks": 2}, (2, 3, 8, 12), (2, 3, 32, 48)),
    "vgg_discriminator": ({"input_size": 32}, (2, 3, 32, 32), (2, 1)),
    "vgg_style_discriminator": ({}, (2, 3, 128, 128), (2, 1)),  # BasicSR's: 128 or 256 px only
    "rrdbnet": ({"num_block": 1, "num_grow_ch": 4}, (2, 3, 6, 10), (2, 3, 24, 40)),
    "rrdbnet_x4plus": ({}, (1, 3, 4, 4), (1, 3, 16, 16)),  # full width: the variant presets it
    "rrdbnet_anime_6b": ({}, (1, 3, 4, 4), (1, 3, 16, 16)),
    "srvgg_compact": ({"num_conv": 2}, (2, 3, 5, 7), (2, 3, 20, 28)),
    "unet_discriminator": ({}, (2, 3, 16, 24), (2, 1, 16, 24)),
}

#: Real-ESRGAN's models keep the argument names their users know (``num_feat`` for the width) and
#: have no norm layers.
REALESRGAN_MODELS = {"rrdbnet", "rrdbnet_x4plus", "rrdbnet_anime_6b", "srvgg_compact", "unet_discriminator"}


def _width(name: str) -> dict:
    """The tiny width for ``name`` under its argument name; nothing for a variant that presets it."""
    signature = model_signature(name)
    return next(({key: 4} for key in ("base_channels", "num_feat") if key in signature), {})


def test_every_registered_model_has_a_case() -> None:
    assert sorted(CASES) == list_models()


def _build(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs, _, _ = CASES[name]
    return create_model(name, **_width(name), **{**kwargs, **extra})


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward(name: str) -> None:
    model = _build(name)
    _, in_shape, out_shape = CASES[name]
    x = torch.rand(in_shape) * 2 - 1
    y = model(x)
    assert y.shape == out_shape
    assert torch.isfinite(y).all()
    if getattr(model, "value_range", None) == (-1.0, 1.0):
        assert y.abs().max() <= 1.0
    y.square().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_round_trip(name: str) -> None:
    model = _build(name).eval()
    _, in_shape, _ = CASES[name]
    x = torch.rand(in_shape) * 2 - 1
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # a different initialisation, overwritten by the load
    clone = create_model(name, **_width(name), **CASES[name][0]).eval()
    clone.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


@pytest.mark.parametrize("name", sorted(CASES))
def test_hyperparameters_are_keyword_only_with_conventional_names(name: str) -> None:
    if name in REALESRGAN_MODELS:
        assert "in_channels" in model_signature(name)
        assert "num_feat" in model_signature(name) or "num_feat" in registry._entry(name).preset
    else:
        assert {"in_channels", "base_channels", "norm"} <= set(model_signature(name))
    builder = registry._entry(name).builder
    kinds = {p.kind for p in inspect.signature(builder).parameters.values()}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}


def test_unet_size_multiple_and_value_range() -> None:
    model = create_model("unet", num_downs=4, base_channels=4)
    assert model.size_multiple == 16
    assert model.value_range == (-1.0, 1.0)
    assert create_model("unet_256", base_channels=4).size_multiple == 256
    assert create_model("unet_128", base_channels=4).size_multiple == 128
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.zeros(1, 3, 24, 32))


def test_resnet_size_multiple() -> None:
    model = create_model("resnet_6blocks", base_channels=4)
    assert model.size_multiple == 4
    assert model.value_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 18, 16))


def test_unet_dropout_positions() -> None:
    # pix2pix: dropout in the num_downs - 5 up blocks next to the innermost one.
    model = create_model("unet_256", base_channels=4, dropout=True)
    with_dropout = [
        i for i, block in enumerate(model.up) if any(isinstance(m, torch.nn.Dropout) for m in block)
    ]
    assert with_dropout == [4, 5, 6]
    plain = create_model("unet_256", base_channels=4)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    # Dropout is active in train mode, the identity in eval mode.
    model.eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_unet_widths_and_bias() -> None:
    model = create_model("unet_256", base_channels=8, norm="batch")
    widths = [block.conv.out_channels for block in model.down]
    assert widths == [8, 16, 32, 64, 64, 64, 64, 64]
    assert model.up[0].conv.bias is not None  # the output conv always has a bias
    assert all(block.conv.bias is None for block in model.down)
    instance = create_model("unet_128", base_channels=8, norm="instance")
    assert all(block.conv.bias is not None for block in instance.down)
    assert create_model("unet_128", base_channels=8, norm="instance", bias=False).down[1].conv.bias is None


@pytest.mark.parametrize(
    ("name", "kwargs", "in_shape", "out_channels"),
    [
        ("unet", {"num_downs": 3}, (1, 1, 16, 16), 3),
        ("resnet", {"num_blocks": 1}, (1, 1, 8, 12), 3),
        ("resnet", {"num_blocks": 1}, (1, 3, 8, 8), 1),
    ],
)
def test_channel_counts(name: str, kwargs: dict, in_shape: tuple[int, ...], out_channels: int) -> None:
    model = create_model(name, base_channels=4, in_channels=in_shape[1], out_channels=out_channels, **kwargs)
    assert model(torch.zeros(in_shape)).shape == (in_shape[0], out_channels, *in_shape[2:])


def test_patchgan_receptive_geometry() -> None:
    # The 70x70 PatchGAN maps 256x256 to 30x30 logits; n_layers=5 maps 256x256 to 6x6.
    pix2pix_d = create_model("patchgan", base_channels=4, in_channels=6)
    assert pix2pix_d(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    deep_d = create_model("patchgan", base_channels=4, n_layers=5)
    assert deep_d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 6, 6)


def test_patchgan_spectral_norm() -> None:
    torch.manual_seed(0)
    model = create_model("patchgan", base_channels=4, spectral_norm=True)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    assert all(torch.nn.utils.parametrize.is_parametrized(conv, "weight") for conv in convs)
    # No norm layers unless asked; convs keep their biases.
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in model.modules())
    assert all(conv.bias is not None for conv in convs)
    x = torch.rand(2, 3, 64, 64)
    model(x).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # After some power iterations each weight's largest singular value is about 1.
    with torch.no_grad():
        for _ in range(20):
            model(x)
        model.eval()
        for conv in convs:
            sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
            assert sigma == pytest.approx(1.0, abs=0.05)
    # Asking for a norm explicitly combines it with spectral norm.
    both = create_model("patchgan", base_channels=4, spectral_norm=True, norm="instance")
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in both.modules())
    # Spectral-normalised models also save and load.
    clone = create_model("patchgan", base_channels=4, spectral_norm=True).eval()
    clone.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(clone(x), model(x))


def test_unknown_model_name_lists_close_matches() -> None:
    # ModelError, not KeyError: the CLI reports exactly i2i's errors as one line.
    with pytest.raises(ModelError, match="unet_256"):
        create_model("unet256")


def test_unknown_argument_lists_valid_ones() -> None:
    # ModelError, not TypeError: a wrong --set task.generator.KEY is a user mistake, not a bug.
    with pytest.raises(ModelError, match="base_channels"):
        create_model("unet_256", ngf=64)


def test_bad_hyperparameters_are_explained() -> None:
    with pytest.raises(ValueError, match="norm"):
        create_model("resnet_6blocks", norm="group")
    with pytest.raises(ValueError, match="padding"):
        create_model("resnet_6blocks", padding="circular")
    with pytest.raises(ValueError, match="num_downs"):
        create_model("unet", num_downs=1)


def test_a_model_built_directly_describes_itself_and_rebuilds_exactly() -> None:
    from i2i.models.resnet import ResnetGenerator
    from i2i.models.unet import UNetGenerator

    direct = UNetGenerator(num_downs=3, base_channels=4, dropout=True)
    assert direct.model_spec == {
        "name": "unet",
        "kwargs": {"num_downs": 3, "in_channels": 3, "out_channels": 3, "base_channels": 4,
                   "norm": "batch", "dropout": True, "bias": None},
    }
    rebuilt = create_model(direct.model_spec["name"], **direct.model_spec["kwargs"])
    rebuilt.load_state_dict(direct.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(direct.eval()(x), rebuilt.eval()(x))
    assert ResnetGenerator(num_blocks=2, base_channels=4).model_spec["kwargs"]["num_blocks"] == 2


def test_a_variant_keeps_its_own_name_and_refuses_its_preset() -> None:
    model = create_model("resnet_6blocks", base_channels=4)
    assert model.model_spec["name"] == "resnet_6blocks"
    assert "num_blocks" not in model.model_spec["kwargs"]
    assert len([m for m in model.modules() if type(m).__name__ == "ResidualBlock"]) == 6
    with pytest.raises(ModelError, match="num_blocks"):
        create_model("resnet_6blocks", num_blocks=3)
