"""Super-resolution files: BasicSR ``MSRResNet`` and leftthomas/SRGAN ``Generator``. Both take and
give images in [0, 1]."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from i2i.errors import ModelError
from i2i.foreign.common import _PARAM, ForeignFormat, ImportedModel, _all_keys_match, _finish

_BASICSR = "BasicSR MSRResNet"
_LEFTTHOMAS = "leftthomas/SRGAN Generator"
#: Keys under which BasicSR wraps a state_dict, in order of preference (EMA weights first).
BASICSR_PARAM_KEYS = ("params_ema", "params")


def _unwrap_basicsr(state: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """``{"params_ema": sd, "params": sd}`` -> (``sd``, the key used); other dicts pass through."""
    for key in BASICSR_PARAM_KEYS:
        if isinstance(state.get(key), Mapping):
            return dict(state[key]), key
    return dict(state), ""


def _basicsr_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(
            state, r"(conv_first|body\.\d+\.conv[12]|upconv[12]|conv_hr|conv_last)\.(weight|bias)"
        )
        and "conv_first.weight" in state
        and "upconv1.weight" in state
    )


def _basicsr_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    first, up1 = state["conv_first.weight"], state["upconv1.weight"]
    last = state.get("conv_last.weight")
    if last is None or last.dim() != 4:
        raise ModelError(f"{_BASICSR} checkpoint has no conv_last.weight.")
    channels = int(first.shape[0])
    ratio = int(up1.shape[0]) // channels
    if "upconv2.weight" in state:
        scale = 4
    elif ratio in (4, 9):
        scale = {4: 2, 9: 3}[ratio]
    else:
        raise ModelError(
            f"{_BASICSR} upconv1 has {up1.shape[0]} output channels for {channels} features; "
            "expected 4x (scale 2) or 9x (scale 3), or an upconv2 (scale 4)."
        )
    num_blocks = len({key.split(".")[1] for key in state if key.startswith("body.")})
    renames = {"conv_first": "head.conv", "conv_hr": "hr_conv.conv", "conv_last": "tail"}
    renames.update({"upconv1": "upsample.0.conv", "upconv2": "upsample.1.conv"})
    for b in range(num_blocks):
        renames.update({f"body.{b}.conv1": f"blocks.{b}.conv1", f"body.{b}.conv2": f"blocks.{b}.conv2"})
    kwargs: dict[str, Any] = {
        "scale": scale,
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[0]),
        "base_channels": channels,
        "num_blocks": num_blocks,
        "norm": "none",
        "activation": "leaky_relu",
        "block_activation": "relu",
        "negative_slope": 0.1,
        "head_kernel": int(first.shape[-1]),
        "tail_kernel": int(last.shape[-1]),
        "body_conv": False,
        "feature_skip": False,
        "hr_conv": True,
        "image_skip": "bilinear",
        "output_activation": "none",
        "bias": True,
    }
    return _finish(
        model="srresnet", kwargs=kwargs, state=state, renames=renames, value_range=(0.0, 1.0), source=_BASICSR
    )


_LEFTTHOMAS_KEY = re.compile(
    r"block(\d+)\.(\d+\.conv|\d+\.prelu|\d+|conv[12]|bn[12]|prelu)\." + _PARAM
)


def _leftthomas_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        bool(state)
        and all(_LEFTTHOMAS_KEY.fullmatch(key) for key in state)
        and "block1.0.weight" in state
        and "block1.1.weight" in state
        and "block2.conv1.weight" in state
    )


def _leftthomas_upsampling(state: Mapping[str, Tensor], up: int) -> tuple[list[int], int]:
    """The pixel-shuffle stages of upsampling block ``up`` and the scale they multiply to."""
    stages = sorted({int(key.split(".")[1]) for key in state if re.fullmatch(rf"block{up}\.\d+\.conv\.weight", key)})
    if stages != list(range(len(stages))) or not stages:
        raise ModelError(f"{_LEFTTHOMAS} upsampling block{up} has stages {stages}; expected 0..n-1.")
    channels = int(state["block1.0.weight"].shape[0])
    scale = 1
    for s in stages:
        ratio = int(state[f"block{up}.{s}.conv.weight"].shape[0]) // channels
        factor = int(round(math.sqrt(ratio)))
        if factor * factor != ratio:
            raise ModelError(f"{_LEFTTHOMAS} upsampling stage {s} widens {channels} to {ratio}x channels.")
        scale *= factor
    return stages, scale


def _leftthomas_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    indices = sorted({int(match.group(1)) for key in state if (match := _LEFTTHOMAS_KEY.fullmatch(key))})
    residual = [i for i in indices if f"block{i}.conv1.weight" in state]
    body, up = indices[-2], indices[-1]
    if residual != list(range(2, body)) or indices != [1, *residual, body, up]:
        raise ModelError(
            f"{_LEFTTHOMAS} blocks are numbered {indices}; expected block1, residual blocks "
            "block2..blockN, then the body conv and the upsampling blocks."
        )
    stages, scale = _leftthomas_upsampling(state, up)
    first = state["block1.0.weight"]
    channels = int(first.shape[0])
    tail = f"block{up}.{len(stages)}"
    last = state.get(f"{tail}.weight")
    if last is None or last.dim() != 4:
        raise ModelError(f"{_LEFTTHOMAS} checkpoint has no final conv {tail}.weight.")
    renames = {
        "block1.0": "head.conv",
        "block1.1": "head.act",
        f"block{body}.0": "body_conv.conv",
        f"block{body}.1": "body_conv.norm",
        tail: "tail",
    }
    for s in stages:
        renames.update({f"block{up}.{s}.conv": f"upsample.{s}.conv", f"block{up}.{s}.prelu": f"upsample.{s}.act"})
    for n, i in enumerate(residual):
        renames.update(
            {
                f"block{i}.conv1": f"blocks.{n}.conv1",
                f"block{i}.bn1": f"blocks.{n}.norm1",
                f"block{i}.prelu": f"blocks.{n}.act",
                f"block{i}.conv2": f"blocks.{n}.conv2",
                f"block{i}.bn2": f"blocks.{n}.norm2",
            }
        )
    kwargs: dict[str, Any] = {
        "scale": scale,
        "in_channels": int(first.shape[1]),
        "out_channels": int(last.shape[0]),
        "base_channels": channels,
        "num_blocks": len(residual),
        "norm": "batch" if "block2.bn1.weight" in state else "none",
        "activation": "prelu",
        "block_activation": "prelu",
        "negative_slope": 0.1,
        "head_kernel": int(first.shape[-1]),
        "tail_kernel": int(last.shape[-1]),
        "body_conv": True,
        "feature_skip": True,
        "hr_conv": False,
        "image_skip": "none",
        "output_activation": "tanh",
        "bias": "block2.conv1.bias" in state,
    }
    return _finish(
        model="srresnet", kwargs=kwargs, state=state, renames=renames, value_range=(0.0, 1.0), source=_LEFTTHOMAS
    )


#: The super-resolution formats, tried in this order.
SR_FORMATS = [
    ForeignFormat(f"{_BASICSR} (plain, params or params_ema)", _basicsr_matches, _basicsr_convert),
    ForeignFormat(_LEFTTHOMAS, _leftthomas_matches, _leftthomas_convert),
]
