"""ESRGAN and Real-ESRGAN files: ``RRDBNet`` in three key layouts, ``SRVGGNetCompact`` and the
``UNetDiscriminatorSN`` discriminator. All take images in [0, 1]; generators give unclamped output.

- Real-ESRGAN / BasicSR ``RRDBNet`` (``RealESRGAN_x4plus.pth``, ``RealESRGAN_x2plus.pth``,
  ``RealESRGAN_x4plus_anime_6B.pth``): ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
  ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``.
- The original ESRGAN repository's layout (``model.0``, ``model.1.sub.N.RDBk.convj.0``,
  ``model.1.sub.{num_block}`` the trunk conv, the upsampling convs at ``model.3``, ``model.6``, ...,
  then the HR conv and the last conv): how most community ESRGAN models are shared.
- The ESRGAN repository's later layout (``RRDB_ESRGAN_x4.pth``): ``conv_first``,
  ``RRDB_trunk.N.RDBk.convj``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``, ``conv_last``.

What the tensors say, and what is assumed:

- RRDBNet's width, block count and growth come from the shapes. The scale: each upsampling conv
  doubles the size; when ``conv_first`` takes 4x (16x) the channels ``conv_last`` gives, the input
  is pixel-unshuffled by 2 (4) first, as Real-ESRGAN's x2 (x1) models do. So RGB Real-ESRGAN files
  with 3, 12 or 48 input channels are x4, x2 and x1. An old-layout file with one upsampling conv is
  read as x2: ESRGAN's rare x3 models (nearest x3 before that conv) hold the same tensors.
- ``SRVGGNetCompact``: the activation is PReLU when per-channel PReLU weights sit between the convs
  (Real-ESRGAN's published compact models all use PReLU); ReLU and LeakyReLU hold no tensors and
  cannot be told apart, so a file without them is read as ReLU (said in ``source``). The scale is
  read from the last conv: ``out_channels * scale**2`` channels, ``out_channels == in_channels``.
- ``UNetDiscriminatorSN``: skip connections hold no tensors; files import with
  ``skip_connection=True``, Real-ESRGAN's setting. The spectral-norm tensors of
  ``torch.nn.utils.spectral_norm`` (``weight_orig``, ``weight_u``, ``weight_v``) become those of
  PyTorch's parametrization (``parametrizations.weight.original``, ``..._u``, ``..._v``); in
  ``eval()`` both use the stored vectors without a power iteration, so the outputs are equal.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from i2i.errors import ModelError
from i2i.foreign.common import ForeignFormat, ImportedModel, _all_keys_match, _finish

_REALESRGAN_RRDB = "Real-ESRGAN RRDBNet"
_ESRGAN_OLD = "ESRGAN RRDBNet (original model.N layout)"
_ESRGAN_TRUNK = "ESRGAN RRDBNet (RRDB_trunk layout)"
_SRVGG = "Real-ESRGAN SRVGGNetCompact"
_UNET_D = "Real-ESRGAN UNetDiscriminatorSN"
_WB = r"\.(weight|bias)"


# --- RRDBNet ------------------------------------------------------------------------------------


def _rrdb_kwargs(named: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """RRDBNet arguments from a state_dict already in i2i's (BasicSR's) names."""
    first, last = named.get("conv_first.weight"), named.get("conv_last.weight")
    if first is None or last is None or first.dim() != 4 or last.dim() != 4:
        raise ModelError(f"{source} checkpoint needs 4-D first and last conv weights.")
    blocks = sorted({int(key.split(".")[1]) for key in named if key.startswith("body.")})
    ups = sorted(int(m.group(1)) for key in named if (m := re.fullmatch(r"conv_up(\d+)\.weight", key)))
    if blocks != list(range(len(blocks))) or ups != list(range(1, len(ups) + 1)):
        raise ModelError(
            f"{source} checkpoint has RRDB blocks {blocks} and upsampling convs {ups}; expected "
            "blocks numbered 0..n-1 and upsampling convs 1..m."
        )
    out_channels = int(last.shape[0])
    stacked = int(first.shape[1])
    factor = next((f for f in (4, 2) if stacked == out_channels * f * f), 1)
    if 2 ** len(ups) < factor:
        raise ModelError(
            f"{source} checkpoint pixel-unshuffles by {factor} but upsamples only x{2 ** len(ups)}."
        )
    grow = named.get("body.0.rdb1.conv1.weight")
    return {
        "scale": 2 ** len(ups) // factor,
        "in_channels": stacked // (factor * factor),
        "out_channels": out_channels,
        "num_feat": int(first.shape[0]),
        "num_block": len(blocks),
        "num_grow_ch": int(grow.shape[0]) if grow is not None else 32,
        "num_upsample": len(ups),
    }


def _rrdb_finish(state: Mapping[str, Tensor], renames: dict[str, str], source: str) -> ImportedModel:
    named = {}
    for key, tensor in state.items():
        prefix, param = key.rsplit(".", 1)
        named[f"{renames.get(prefix, prefix)}.{param}"] = tensor
    kwargs = _rrdb_kwargs(named, source)
    return _finish(model="rrdbnet", kwargs=kwargs, state=state, renames=renames, value_range=(0.0, 1.0), source=source)


_REALESRGAN_KEY = r"(conv_first|body\.\d+\.rdb[123]\.conv[1-5]|conv_body|conv_up\d+|conv_hr|conv_last)" + _WB


def _realesrgan_rrdb_matches(state: Mapping[str, Tensor]) -> bool:
    return _all_keys_match(state, _REALESRGAN_KEY) and "conv_first.weight" in state and "conv_body.weight" in state


def _realesrgan_rrdb_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    renames = {key.rsplit(".", 1)[0]: key.rsplit(".", 1)[0] for key in state}
    return _rrdb_finish(state, renames, _REALESRGAN_RRDB)


_TRUNK_KEY = r"(conv_first|RRDB_trunk\.\d+\.RDB[123]\.conv[1-5]|trunk_conv|upconv\d+|HRconv|conv_last)" + _WB


def _esrgan_trunk_matches(state: Mapping[str, Tensor]) -> bool:
    return _all_keys_match(state, _TRUNK_KEY) and "conv_first.weight" in state and "trunk_conv.weight" in state


def _esrgan_trunk_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    renames = {"conv_first": "conv_first", "trunk_conv": "conv_body", "HRconv": "conv_hr", "conv_last": "conv_last"}
    for key in state:
        prefix = key.rsplit(".", 1)[0]
        if prefix.startswith("upconv"):
            renames[prefix] = f"conv_up{prefix[len('upconv'):]}"
        elif prefix.startswith("RRDB_trunk."):
            _, block, rdb, conv = prefix.split(".")
            renames[prefix] = f"body.{block}.{rdb.lower()}.{conv}"
    return _rrdb_finish(state, renames, _ESRGAN_TRUNK)


_OLD_KEY = r"model\.(0|1\.sub\.\d+\.RDB[123]\.conv[1-5]\.0|1\.sub\.\d+|\d+)" + _WB


def _esrgan_old_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(state, _OLD_KEY)
        and "model.0.weight" in state
        and any(key.startswith("model.1.sub.") for key in state)
    )


def _old_tail_renames(state: Mapping[str, Tensor]) -> dict[str, str]:
    """Renames of the layers after the trunk: ``n`` x (upsample, conv, act), HR conv, act, last conv."""
    convs = sorted({int(key.split(".")[1]) for key in state if re.fullmatch(r"model\.\d+\.weight", key)} - {0})
    n = (convs[-1] - 4) // 3 if convs else -1
    if n < 0 or convs != [*(3 * k for k in range(1, n + 1)), 3 * n + 2, 3 * n + 4]:
        raise ModelError(
            f"{_ESRGAN_OLD} checkpoint has convolutions at model.{convs} after the trunk; expected nearest-"
            "upsampling convs at model.3, model.6, ... then the HR conv and the last conv (two and four "
            "after the last upsampling conv). Pixel-shuffle ESRGAN variants are not supported."
        )
    renames = {f"model.{3 * k}": f"conv_up{k}" for k in range(1, n + 1)}
    renames.update({f"model.{3 * n + 2}": "conv_hr", f"model.{3 * n + 4}": "conv_last"})
    return renames


def _esrgan_old_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    renames = {"model.0": "conv_first", **_old_tail_renames(state)}
    subs = {int(key.split(".")[3]) for key in state if key.startswith("model.1.sub.")}
    blocks = {int(key.split(".")[3]) for key in state if re.match(r"model\.1\.sub\.\d+\.RDB", key)}
    trunk = sorted(subs - blocks)
    if trunk != [len(blocks)]:
        raise ModelError(
            f"{_ESRGAN_OLD} checkpoint has RRDB blocks model.1.sub.{sorted(blocks)} and plain convs "
            f"model.1.sub.{trunk}; expected the trunk conv right after the last block."
        )
    renames[f"model.1.sub.{trunk[0]}"] = "conv_body"
    for key in state:
        if re.match(r"model\.1\.sub\.\d+\.RDB", key):
            _, _, _, block, rdb, conv, _, _ = key.split(".")
            renames[key.rsplit(".", 1)[0]] = f"body.{block}.{rdb.lower()}.{conv}"
    return _rrdb_finish(state, renames, _ESRGAN_OLD)


# --- SRVGGNetCompact ----------------------------------------------------------------------------


def _srvgg_matches(state: Mapping[str, Tensor]) -> bool:
    first = state.get("body.0.weight")
    return _all_keys_match(state, r"body\.\d+" + _WB) and first is not None and first.dim() == 4


def _srvgg_activation(state: Mapping[str, Tensor], convs: list[int], num_feat: int) -> str:
    """``prelu`` when every activation slot holds a per-channel PReLU weight, ``relu`` when none does."""
    slots = [i + 1 for i in convs[:-1]]
    prelus = [i for i in slots if f"body.{i}.weight" in state]
    if not prelus:
        return "relu"
    shapes = {tuple(state[f"body.{i}.weight"].shape) for i in prelus}
    if prelus != slots or shapes != {(num_feat,)}:
        raise ModelError(
            f"{_SRVGG} checkpoint has PReLU weights at body.{prelus} with shapes {sorted(shapes)}; "
            f"expected one of shape ({num_feat},) after every conv but the last (body.{slots})."
        )
    return "prelu"


def _srvgg_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    convs = sorted(int(key.split(".")[1]) for key, value in state.items() if key.endswith(".weight") and value.dim() == 4)
    if len(convs) < 2 or convs != list(range(0, 2 * len(convs), 2)):
        raise ModelError(
            f"{_SRVGG} checkpoint has convolutions at body.{convs}; expected body.0, body.2, body.4, ... "
            "(an activation between each two)."
        )
    first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
    in_channels, num_feat = int(first.shape[1]), int(first.shape[0])
    scale = math.isqrt(int(last.shape[0]) // in_channels)
    if in_channels * scale * scale != int(last.shape[0]):
        raise ModelError(
            f"{_SRVGG} last conv body.{convs[-1]} gives {last.shape[0]} channels, not {in_channels} x "
            "scale**2 (the output adds the upsampled input, so it has as many channels as the input)."
        )
    activation = _srvgg_activation(state, convs, num_feat)
    kwargs: dict[str, Any] = {
        "scale": scale,
        "in_channels": in_channels,
        "out_channels": in_channels,
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "activation": activation,
    }
    source = _SRVGG if activation == "prelu" else f"{_SRVGG} (activation assumed ReLU: no PReLU weights)"
    renames = {key.rsplit(".", 1)[0]: key.rsplit(".", 1)[0] for key in state}
    return _finish(model="srvgg_compact", kwargs=kwargs, state=state, renames=renames, value_range=(0.0, 1.0), source=source)


# --- UNetDiscriminatorSN ------------------------------------------------------------------------

#: ``torch.nn.utils.spectral_norm`` tensor -> PyTorch parametrization tensor, under a conv's prefix.
_SPECTRAL_NORM_KEYS = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}


def _unet_d_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(state, r"conv\d\.(weight|bias|weight_orig|weight_u|weight_v)")
        and "conv0.weight" in state
        and "conv9.weight" in state
    )


def _unet_d_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    named: dict[str, Tensor] = {}
    for key, tensor in state.items():
        prefix, param = key.rsplit(".", 1)
        named[f"{prefix}.{_SPECTRAL_NORM_KEYS.get(param, param)}"] = tensor
    spectral = "conv1.weight_orig" in state
    first = state["conv0.weight"]
    kwargs: dict[str, Any] = {
        "in_channels": int(first.shape[1]),
        "num_feat": int(first.shape[0]),
        # Skip connections hold no tensors; Real-ESRGAN trains with them.
        "skip_connection": True,
        "spectral_norm": spectral,
    }
    renames = {key.rsplit(".", 1)[0]: key.rsplit(".", 1)[0] for key in named}
    return _finish(
        model="unet_discriminator", kwargs=kwargs, state=named, renames=renames, value_range=(0.0, 1.0), source=_UNET_D
    )


#: The ESRGAN / Real-ESRGAN formats, tried in this order.
REALESRGAN_FORMATS = [
    ForeignFormat(f"{_REALESRGAN_RRDB} (params_ema or params)", _realesrgan_rrdb_matches, _realesrgan_rrdb_convert),
    ForeignFormat(_ESRGAN_OLD, _esrgan_old_matches, _esrgan_old_convert),
    ForeignFormat(_ESRGAN_TRUNK, _esrgan_trunk_matches, _esrgan_trunk_convert),
    ForeignFormat(f"{_SRVGG} (params)", _srvgg_matches, _srvgg_convert),
    ForeignFormat(f"{_UNET_D} (params, spectral norm)", _unet_d_matches, _unet_d_convert),
]
