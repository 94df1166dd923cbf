"""Import checkpoints written by other projects, with no flags.

A foreign ``state_dict`` is recognised by its key names, its architecture (depth, widths,
channels, norm, bias) is read from the key names and tensor shapes, and its tensors are renamed
to i2i's parameter names. The result, an :class:`ImportedModel`, says which registered model to
build and with which keyword arguments; :func:`build_imported` builds it and loads the weights.

Supported today:

- pytorch-CycleGAN-and-pix2pix (files such as ``latest_net_G.pth``, ``latest_net_G_A.pth``,
  ``latest_net_D.pth``): ``UnetGenerator``, ``ResnetGenerator``, ``NLayerDiscriminator``,
  ``PixelDiscriminator``;
- BasicSR ``MSRResNet`` (the model-zoo SRResNet, x2/x3/x4), plain or wrapped as BasicSR saves
  it: ``{"params": state_dict}`` and, for runs with EMA, also ``{"params_ema": state_dict}``.
  When both are present the **EMA weights** (``params_ema``) are used, as Real-ESRGAN's and
  BasicSR's inference scripts do; the chosen key is named in ``ImportedModel.source``;
- leftthomas/SRGAN ``Generator`` (``netG_epoch_<scale>_<epoch>.pth``).

New formats are added by appending a :class:`ForeignFormat` (a detector plus a converter) to
:data:`FORMATS`.

What the tensors cannot tell, and what is assumed instead:

- U-Net dropout layers hold no tensors, so U-Nets import with ``dropout=True``, the pix2pix
  default. It only matters for training: dropout is the identity in ``eval()``.
- ResNet dropout *is* visible (it shifts the layer indices inside each residual block) and is
  read from the file; CycleGAN's default is ``dropout=False``.
- ResNet blocks padded by reflection and by replication have the same keys; they import as
  ``padding="reflect"``, the reference default. Zero padding is recognised.
- InstanceNorm without affine parameters holds no tensors; a norm is read as ``instance`` when
  the convolutions before norms carry biases and as ``none`` otherwise (the reference code ties
  the bias to the norm this way). Old files whose InstanceNorm layers saved
  ``running_mean``/``running_var``/``num_batches_tracked`` have those keys dropped, as the
  reference code does; they are told from BatchNorm by having no ``weight``/``bias``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.models import create_model

__all__ = [
    "ImportedModel",
    "ForeignFormat",
    "FORMATS",
    "read_state_dict",
    "import_state_dict",
    "import_checkpoint",
    "build_imported",
]

_JUNYANZ = "pytorch-CycleGAN-and-pix2pix"
_PARAM = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class ImportedModel:
    """A foreign checkpoint translated into i2i terms.

    ``value_range`` is the range of the model's input images (and, for generators, of its output).
    """

    model: str
    kwargs: dict[str, Any]
    state_dict: dict[str, Tensor]
    value_range: tuple[float, float]
    source: str


@dataclass(frozen=True)
class ForeignFormat:
    """One foreign checkpoint format.

    ``matches(state)`` says cheaply whether the keys look like this format; ``convert(state)``
    infers the architecture and renames the tensors, raising ``ValueError`` when the file only
    looks like the format. ``state`` has had any DataParallel ``module.`` prefix removed.
    """

    name: str
    matches: Callable[[Mapping[str, Tensor]], bool]
    convert: Callable[[Mapping[str, Tensor]], ImportedModel]


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _strip_module_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove the ``module.`` prefix that ``nn.DataParallel``/DDP add to every key."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _drop_legacy_instance_norm_stats(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop running statistics saved by old InstanceNorm layers.

    Such a layer has ``running_mean`` but no ``weight``; a BatchNorm layer has both.
    """
    legacy = {
        key.rsplit(".", 1)[0]
        for key in state
        if key.endswith(".running_mean") and key.rsplit(".", 1)[0] + ".weight" not in state
    }
    return {
        key: value
        for key, value in state.items()
        if not (key.rsplit(".", 1)[0] in legacy and key.rsplit(".", 1)[1] in _NORM_STATS)
    }


def _norm_and_bias(state: Mapping[str, Tensor], norm_prefix: str, conv_prefix: str) -> tuple[str, bool]:
    """Read the norm type and conv bias from a norm position and the conv before it."""
    bias = f"{conv_prefix}.bias" in state
    if f"{norm_prefix}.weight" in state:
        return "batch", bias
    return ("instance" if bias else "none"), bias


def _all_keys_match(state: Mapping[str, Tensor], pattern: str) -> bool:
    regex = re.compile(pattern)
    return bool(state) and all(regex.fullmatch(key) for key in state)


def _conv_kernel(state: Mapping[str, Tensor], key: str) -> int | None:
    tensor = state.get(key)
    if not isinstance(tensor, Tensor) or tensor.dim() != 4:
        return None
    return int(tensor.shape[-1])


def _finish(
    *,
    model: str,
    kwargs: dict[str, Any],
    state: Mapping[str, Tensor],
    renames: Mapping[str, str],
    value_range: tuple[float, float],
    source: str,
) -> ImportedModel:
    """Rename module prefixes with ``renames`` and check the result against the inferred model.

    The model is built on the meta device (no memory, no compute) only to compare key names and
    shapes, so a file that merely resembles the format fails here with a precise message rather
    than later in ``load_state_dict``.
    """
    described = f"{model}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    converted: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        prefix, param = key.rsplit(".", 1)
        if prefix in renames:
            converted[f"{renames[prefix]}.{param}"] = tensor
        else:
            unknown.append(key)
    try:
        with torch.device("meta"):
            expected = create_model(model, **kwargs).state_dict()
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"{source} checkpoint implies an unsupported architecture {described}: {exc}"
        ) from exc
    missing = [key for key in expected if key not in converted]
    unexpected = unknown + [key for key in converted if key not in expected]
    mismatched = [
        f"{key} {tuple(converted[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in expected
        if key in converted and converted[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected[:5])}")
        if mismatched:
            problems.append(f"shape mismatch {', '.join(mismatched[:5])}")
        raise ModelError(
            f"Checkpoint looks like {source} but does not fit the inferred {described}: "
            f"{'; '.join(problems)}."
        )
    return ImportedModel(
        model=model, kwargs=kwargs, state_dict=converted, value_range=value_range, source=source
    )


# ---------------------------------------------------------------------------------------------
# pytorch-CycleGAN-and-pix2pix (junyanz)


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
    named = {7: "unet_128", 8: "unet_256"}
    if num_downs in named:
        model = named[num_downs]
    else:
        model = "unet"
        kwargs = {"num_downs": num_downs, **kwargs}
    return _finish(
        model=model,
        kwargs=kwargs,
        state=state,
        renames=renames,
        value_range=(-1.0, 1.0),
        source=f"{_JUNYANZ} UnetGenerator",
    )


def _junyanz_resnet_matches(state: Mapping[str, Tensor]) -> bool:
    return (
        _all_keys_match(state, r"model\.\d+\.(conv_block\.\d+\.)?" + _PARAM)
        and _conv_kernel(state, "model.1.weight") == 7
    )


def _junyanz_resnet_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    state = _drop_legacy_instance_norm_stats(state)
    block_regex = re.compile(r"model\.(\d+)\.conv_block\.(\d+)\.weight")
    blocks: dict[int, list[int]] = {}
    for key, tensor in state.items():
        match = block_regex.fullmatch(key)
        if match and tensor.dim() == 4:
            blocks.setdefault(int(match.group(1)), []).append(int(match.group(2)))
    num_blocks = len(blocks)

    # Inside a block: [pad] conv norm relu [dropout] [pad] conv norm. A pad layer shifts the first
    # conv to index 1; dropout shifts the second conv by one more.
    padding, dropout, first_conv, second_conv = "reflect", False, 1, 5
    if blocks:
        convs = sorted(blocks[min(blocks)])
        if len(convs) != 2:
            raise ModelError(
                f"{_JUNYANZ} ResnetGenerator block {min(blocks)} has {len(convs)} convolutions, "
                f"expected 2."
            )
        first_conv, second_conv = convs
        padded = first_conv == 1
        padding = "reflect" if padded else "zeros"
        dropout = second_conv - (2 * first_conv + 3) == 1

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
    named = {6: "resnet_6blocks", 9: "resnet_9blocks"}
    if num_blocks in named:
        model = named[num_blocks]
    else:
        model = "resnet"
        kwargs = {"num_blocks": num_blocks, **kwargs}
    return _finish(
        model=model,
        kwargs=kwargs,
        state=state,
        renames=renames,
        value_range=(-1.0, 1.0),
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


# ---------------------------------------------------------------------------------------------
# Super-resolution: BasicSR MSRResNet and leftthomas/SRGAN Generator. Both take and give [0, 1].

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


def _leftthomas_convert(state: Mapping[str, Tensor]) -> ImportedModel:
    indices = sorted({int(_LEFTTHOMAS_KEY.fullmatch(key).group(1)) for key in state})
    residual = [i for i in indices if f"block{i}.conv1.weight" in state]
    body, up = indices[-2], indices[-1]
    if residual != list(range(2, body)) or indices != [1, *residual, body, up]:
        raise ModelError(
            f"{_LEFTTHOMAS} blocks are numbered {indices}; expected block1, residual blocks "
            "block2..blockN, then the body conv and the upsampling blocks."
        )
    stages = sorted({int(key.split(".")[1]) for key in state if re.fullmatch(rf"block{up}\.\d+\.conv\.weight", key)})
    if stages != list(range(len(stages))) or not stages:
        raise ModelError(f"{_LEFTTHOMAS} upsampling block{up} has stages {stages}; expected 0..n-1.")
    first = state["block1.0.weight"]
    channels = int(first.shape[0])
    scale = 1
    for s in stages:
        ratio = int(state[f"block{up}.{s}.conv.weight"].shape[0]) // channels
        factor = int(round(math.sqrt(ratio)))
        if factor * factor != ratio:
            raise ModelError(f"{_LEFTTHOMAS} upsampling stage {s} widens {channels} to {ratio}x channels.")
        scale *= factor
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


#: Every supported format, tried in order; the first whose ``matches`` accepts the keys converts.
FORMATS: list[ForeignFormat] = [
    ForeignFormat(f"{_JUNYANZ} UnetGenerator", _junyanz_unet_matches, _junyanz_unet_convert),
    ForeignFormat(f"{_JUNYANZ} ResnetGenerator", _junyanz_resnet_matches, _junyanz_resnet_convert),
    ForeignFormat(f"{_JUNYANZ} NLayerDiscriminator", _junyanz_nlayer_matches, _junyanz_nlayer_convert),
    ForeignFormat(f"{_JUNYANZ} PixelDiscriminator", _junyanz_pixel_matches, _junyanz_pixel_convert),
    ForeignFormat(f"{_BASICSR} (plain, params or params_ema)", _basicsr_matches, _basicsr_convert),
    ForeignFormat(_LEFTTHOMAS, _leftthomas_matches, _leftthomas_convert),
]


# ---------------------------------------------------------------------------------------------
# Public API


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Load a checkpoint file safely (``weights_only=True``, on CPU) and return its top-level dict.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file when it is
    not a readable checkpoint or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here: pickle, zip, weights-only errors
        raise ModelError(
            f"{path} is not a readable PyTorch checkpoint: torch.load(weights_only=True) failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Files that "
            f"pickle whole model objects are refused for safety; re-save them with "
            f"torch.save(model.state_dict(), path)."
        ) from exc
    if not isinstance(obj, Mapping):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state_dict (a dict of tensors).")
    return dict(obj)


def import_state_dict(state: Mapping[str, Tensor]) -> ImportedModel:
    """Recognise a foreign ``state_dict`` and translate it; no flags needed.

    A BasicSR ``{"params_ema": ..., "params": ...}`` wrapper is opened first (EMA weights preferred),
    then a DataParallel ``module.`` prefix is removed. Raises ``ValueError`` listing some of the
    keys seen and the supported formats when nothing recognises the keys.
    """
    state, wrapper = _unwrap_basicsr(state)
    state = _strip_module_prefix(state)
    not_tensors = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if not not_tensors:
        for fmt in FORMATS:
            if fmt.matches(state):
                imported = fmt.convert(state)
                if wrapper:
                    imported = dataclasses.replace(imported, source=f"{imported.source} ({wrapper})")
                return imported
    seen = ", ".join(
        f"{key} {tuple(value.shape)}" if isinstance(value, Tensor) else f"{key} ({type(value).__name__})"
        for key, value in list(state.items())[:6]
    )
    more = f" and {len(state) - 6} more" if len(state) > 6 else ""
    raise ModelError(
        f"Unrecognised checkpoint format ({len(state)} keys: {seen or 'none'}{more}). "
        f"Supported formats: {'; '.join(fmt.name for fmt in FORMATS)}."
    )


def import_checkpoint(path: str | os.PathLike[str]) -> ImportedModel:
    """:func:`read_state_dict` then :func:`import_state_dict`; errors name the file."""
    state = read_state_dict(path)
    try:
        return import_state_dict(state)
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from exc


def build_imported(imported: ImportedModel) -> nn.Module:
    """Build the registered model, load the imported weights strictly and switch to ``eval()``."""
    model = create_model(imported.model, **imported.kwargs)
    model.load_state_dict(imported.state_dict, strict=True)
    return model.eval()
