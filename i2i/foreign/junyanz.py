"""pytorch-CycleGAN-and-pix2pix (junyanz) files: ``UnetGenerator``, ``ResnetGenerator``,
``NLayerDiscriminator`` and ``PixelDiscriminator``, as ``*_net_G.pth`` / ``*_net_D.pth`` hold them."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from i2i.errors import ModelError
from i2i.foreign.common import (
    _PARAM,
    ForeignFormat,
    ImportedModel,
    _all_keys_match,
    _conv_kernel,
    _drop_legacy_instance_norm_stats,
    _finish,
    _norm_and_bias,
)

_JUNYANZ = "pytorch-CycleGAN-and-pix2pix"



def _variant(
    general: str, key: str, value: int, variants: dict[int, str], kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The named variant when ``value`` has one (``unet_256``), else the general model with
    ``key=value`` added to its arguments, so imported files name the reference's architecture."""
    if value in variants:
        return variants[value], kwargs
    return general, {key: value, **kwargs}


def _unet_prefix(level: int) -> str:
    """Module path of the nested ``UnetSkipConnectionBlock.model`` at ``level`` (0 = outermost).

    The outermost block holds its child at index 1, every other block at index 3.
    """
    if level == 0:
        return "model.model"
    return "model.model.1.model" + ".3.model" * (level - 1)


def _junyanz_unet_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(state, r"model\.model\.(\d+\.model\.)*\d+\." + _PARAM)
        and _conv_kernel(state, "model.model.0.weight") == 4
    )


def _junyanz_unet_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    state = _drop_legacy_instance_norm_stats(state)
    innermost = 0
    while any(key.startswith(_unet_prefix(innermost + 1) + ".") for key in state):
        innermost += 1
    num_downs = innermost + 1

    renames = {f"{_unet_prefix(0)}.0": "down.0.conv", f"{_unet_prefix(0)}.3": "up.0.conv"}
    for level in range(1, num_downs):
        p = _unet_prefix(level)
        if level == innermost:
            renames.update(
                {
                    f"{p}.1": f"down.{level}.conv",
                    f"{p}.3": f"up.{level}.conv",
                    f"{p}.4": f"up.{level}.norm",
                }
            )
        else:
            renames.update(
                {
                    f"{p}.1": f"down.{level}.conv",
                    f"{p}.2": f"down.{level}.norm",
                    f"{p}.5": f"up.{level}.conv",
                    f"{p}.6": f"up.{level}.norm",
                }
            )

    inner = _unet_prefix(innermost)
    norm, bias = _norm_and_bias(state, f"{inner}.4", f"{inner}.1")
    first = state["model.model.0.weight"]
    last = state.get("model.model.3.weight")
    kwargs: dict[str, Any] = {
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[1]) if last is not None and last.dim() == 4 else 3,
        "base_channels": int(first.shape[0]),
        "norm": norm,
        # Dropout leaves no tensor behind; pix2pix trains its U-Nets with dropout on.
        "dropout": True,
        "bias": bias,
    }
    model, kwargs = _variant("unet", "num_downs", num_downs, {7: "unet_128", 8: "unet_256"}, kwargs)
    return _finish(
        model=model, kwargs=kwargs, state=state, renames=renames, value_range=(-1.0, 1.0),
        source=f"{_JUNYANZ} UnetGenerator",
    )


def _junyanz_resnet_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(state, r"model\.\d+\.(conv_block\.\d+\.)?" + _PARAM)
        and _conv_kernel(state, "model.1.weight") == 7
    )


def _resnet_block_layout(state: Mapping[str, Tensor]) -> tuple[int, str, bool, int, int]:
    """``(num_blocks, padding, dropout, first_conv, second_conv)`` of a ResnetGenerator's blocks."""
    block_regex = re.compile(r"model\.(\d+)\.conv_block\.(\d+)\.weight")
    blocks: dict[int, list[int]] = {}
    for key, tensor in state.items():
        match = block_regex.fullmatch(key)
        if match and tensor.dim() == 4:
            blocks.setdefault(int(match.group(1)), []).append(int(match.group(2)))
    # Inside a block: [pad] conv norm relu [dropout] [pad] conv norm. A pad layer shifts the first
    # conv to index 1; dropout shifts the second conv by one more.
    if not blocks:
        return 0, "reflect", False, 1, 5
    convs = sorted(blocks[min(blocks)])
    if len(convs) != 2:
        raise ModelError(
            f"{_JUNYANZ} ResnetGenerator block {min(blocks)} has {len(convs)} convolutions, expected 2."
        )
    first_conv, second_conv = convs
    padding = "reflect" if first_conv == 1 else "zeros"
    dropout = second_conv - (2 * first_conv + 3) == 1
    return len(blocks), padding, dropout, first_conv, second_conv


def _resnet_renames(num_blocks: int, first_conv: int, second_conv: int) -> dict[str, str]:
    """The reference's ``model.N`` layer names -> i2i's ResnetGenerator names."""
    renames = {
        "model.1": "stem.conv",
        "model.2": "stem.norm",
        "model.4": "down.0.conv",
        "model.5": "down.0.norm",
        "model.7": "down.1.conv",
        "model.8": "down.1.norm",
        f"model.{10 + num_blocks}": "up.0.conv",
        f"model.{11 + num_blocks}": "up.0.norm",
        f"model.{13 + num_blocks}": "up.1.conv",
        f"model.{14 + num_blocks}": "up.1.norm",
        f"model.{17 + num_blocks}": "head.conv",
    }
    for b in range(num_blocks):
        p = f"model.{10 + b}.conv_block"
        renames.update(
            {
                f"{p}.{first_conv}": f"blocks.{b}.conv1",
                f"{p}.{first_conv + 1}": f"blocks.{b}.norm1",
                f"{p}.{second_conv}": f"blocks.{b}.conv2",
                f"{p}.{second_conv + 1}": f"blocks.{b}.norm2",
            }
        )
    return renames


def _junyanz_resnet_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    state = _drop_legacy_instance_norm_stats(state)
    num_blocks, padding, dropout, first_conv, second_conv = _resnet_block_layout(state)
    renames = _resnet_renames(num_blocks, first_conv, second_conv)
    norm, bias = _norm_and_bias(state, "model.2", "model.1")
    first = state["model.1.weight"]
    last = state.get(f"model.{17 + num_blocks}.weight")
    kwargs: dict[str, Any] = {
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[0]) if last is not None and last.dim() == 4 else 3,
        "base_channels": int(first.shape[0]),
        "norm": norm,
        "dropout": dropout,
        "bias": bias,
        "padding": padding,
    }
    model, kwargs = _variant("resnet", "num_blocks", num_blocks, {6: "resnet_6blocks", 9: "resnet_9blocks"}, kwargs)
    return _finish(
        model=model, kwargs=kwargs, state=state, renames=renames, value_range=(-1.0, 1.0),
        source=f"{_JUNYANZ} ResnetGenerator",
    )


def _junyanz_nlayer_matches(state: Mapping[str, Tensor]) -> bool:
    return _all_keys_match(state, r"model\.\d+\." + _PARAM) and _conv_kernel(state, "model.0.weight") == 4


def _junyanz_nlayer_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    state = _drop_legacy_instance_norm_stats(state)
    convs = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]
    n_layers = len(convs) - 2
    # Layout: conv lrelu, then (conv norm lrelu) x n_layers, then conv: convs at 0, 2, 5, 8, ...
    renames = {"model.0": "blocks.0.conv", f"model.{3 * n_layers + 2}": "head"}
    for n in range(1, n_layers + 1):
        renames.update({f"model.{3 * n - 1}": f"blocks.{n}.conv", f"model.{3 * n}": f"blocks.{n}.norm"})
    norm, bias = _norm_and_bias(state, "model.3", "model.2")
    first = state["model.0.weight"]
    kwargs: dict[str, Any] = {
        "in_channels": int(first.shape[1]),
        "base_channels": int(first.shape[0]),
        "n_layers": n_layers,
        "norm": norm,
        "spectral_norm": False,
        "bias": bias,
    }
    return _finish(
        model="patchgan",
        kwargs=kwargs,
        state=state,
        renames=renames,
        value_range=(-1.0, 1.0),
        source=f"{_JUNYANZ} NLayerDiscriminator",
    )


def _junyanz_pixel_matches(state: Mapping[str, Tensor]) -> bool:
    return _all_keys_match(state, r"net\.\d+\." + _PARAM) and _conv_kernel(state, "net.0.weight") == 1


def _junyanz_pixel_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    state = _drop_legacy_instance_norm_stats(state)
    renames = {"net.0": "conv1", "net.2": "conv2", "net.3": "norm", "net.5": "head"}
    norm, bias = _norm_and_bias(state, "net.3", "net.2")
    first = state["net.0.weight"]
    kwargs: dict[str, Any] = {
        "in_channels": int(first.shape[1]),
        "base_channels": int(first.shape[0]),
        "norm": norm,
        "bias": bias,
    }
    return _finish(
        model="pixel_discriminator",
        kwargs=kwargs,
        state=state,
        renames=renames,
        value_range=(-1.0, 1.0),
        source=f"{_JUNYANZ} PixelDiscriminator",
    )



#: The junyanz formats, tried in this order.
JUNYANZ_FORMATS = [
    ForeignFormat(f"{_JUNYANZ} UnetGenerator", _junyanz_unet_matches, _junyanz_unet_convert),
    ForeignFormat(f"{_JUNYANZ} ResnetGenerator", _junyanz_resnet_matches, _junyanz_resnet_convert),
    ForeignFormat(f"{_JUNYANZ} NLayerDiscriminator", _junyanz_nlayer_matches, _junyanz_nlayer_convert),
    ForeignFormat(f"{_JUNYANZ} PixelDiscriminator", _junyanz_pixel_matches, _junyanz_pixel_convert),
]
