"""What every foreign-format importer shares: the result type, the format record, the helpers
that read architectures from key names and tensor shapes, and the guards that run before any
model is built from a file (i2i's own generator files use them too, :mod:`i2i.checkpoint`).

Building a model allocates what its arguments say, whatever the file holds. So before anything
is built, :func:`check_model_arguments` bounds the arguments (:data:`MODEL_ARGUMENT_LIMITS`),
:func:`expected_shapes` builds the model on the meta device (no memory) to list its tensors, and
:func:`shape_problems` compares them with the file's; :func:`check_tensor_storage` refuses
``torch.load`` tensors that claim more bytes than the file stores.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from i2i.errors import ModelError
from i2i.models import create_model, model_signature

#: The largest value of each argument that sets how deep or wide a model is: a file whose
#: description exceeds one is refused before anything is built. Every other whole-number
#: argument must lie in 0 .. 65536. The real models are far inside (pix2pix unet_256: 8 downs,
#: 64 channels; Real-ESRGAN: 23 blocks of 64 features).
MODEL_ARGUMENT_LIMITS: dict[str, int] = {
    "num_downs": 16, "n_layers": 16, "num_blocks": 256, "num_block": 256, "num_conv": 256, "num_upsample": 8,
    "scale": 16, "base_channels": 4096, "num_feat": 4096, "num_grow_ch": 4096, "in_channels": 64,
    "out_channels": 64, "head_kernel": 31, "tail_kernel": 31, "input_size": 4096,
}
_OTHER_INT_LIMIT = 1 << 16

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


def _describe(model: str, kwargs: Mapping[str, Any]) -> str:
    return f"{model}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _argument_problem(key: str, value: Any, default: Any) -> str | None:
    """What is wrong with ``key=value`` for an argument whose default is ``default``, or None."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "should be true or false"
    whole = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return None if whole or isinstance(value, float) else "should be a number"
    if (isinstance(default, int) or key in MODEL_ARGUMENT_LIMITS) and not whole:
        return "should be a whole number"
    if whole:
        limit = MODEL_ARGUMENT_LIMITS.get(key, _OTHER_INT_LIMIT)
        return None if 0 <= value <= limit else f"is outside the range i2i builds, 0 to {limit}"
    if isinstance(default, str) and not isinstance(value, (str, type(None))):
        return "should be a string"
    return None


def check_model_arguments(model: str, kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`ModelError` unless ``model`` is registered and every argument is one it
    accepts, of its default's type and within :data:`MODEL_ARGUMENT_LIMITS`. Builds nothing."""
    valid = model_signature(model)  # an unknown name: ModelError listing close and registered names
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ModelError(f"{model} has no argument {', '.join(unknown)} (its arguments: {', '.join(sorted(valid))})")
    for key, value in kwargs.items():
        problem = _argument_problem(key, value, valid[key])
        if problem:
            raise ModelError(f"{model} argument {key}={value!r} {problem}")


def expected_shapes(model: str, kwargs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of ``model(**kwargs)``: arguments checked first, then the model built
    on the meta device, which allocates nothing. A failed build is a :class:`ModelError`."""
    check_model_arguments(model, kwargs)
    try:
        with torch.device("meta"):
            state = create_model(model, **kwargs).state_dict()
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - arguments from a file: any failure is the file's
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelError(f"cannot build {_describe(model, kwargs)} ({type(exc).__name__}: {first})") from exc
    return {key: tuple(value.shape) for key, value in state.items()}


def shape_problems(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]],
                   unknown: list[str] | None = None) -> str:
    """``"missing ...; unexpected ...; shape mismatch ..."`` (a few of each), or ``""`` when the
    keys and shapes agree."""
    missing = [key for key in expected if key not in found]
    unexpected = (unknown or []) + [key for key in found if key not in expected]
    mismatched = [f"{key} {tuple(found[key])} (expected {tuple(expected[key])})"
                  for key in expected if key in found and tuple(found[key]) != tuple(expected[key])]
    problems = [f"{what} {', '.join(keys[:5])}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
                if keys]
    return "; ".join(problems)


def _tensors(state: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Tensor]]:
    found = []
    for key, value in state.items():
        if isinstance(value, Tensor):
            found.append((f"{prefix}{key}", value))
        elif isinstance(value, Mapping):  # BasicSR wraps state_dicts: {"params": ..., "params_ema": ...}
            found += _tensors(value, f"{prefix}{key}.")
    return found


def check_tensor_storage(state: Mapping[str, Any], path: object) -> None:
    """Refuse a loaded checkpoint whose tensors claim more bytes than it stores.

    ``torch.load`` rebuilds each tensor from a storage, an offset, a shape and strides, so a tiny
    file can describe gigabytes: strides of 0 repeat one stored value, and many tensors can view
    one storage. Building the model those shapes imply would allocate it all. Each tensor must fit
    in its own storage, and all of them together in at most twice what the file stores.
    """
    claimed, stored = 0, {}
    for key, tensor in _tensors(state):
        size = tensor.numel() * tensor.element_size()
        storage = tensor.untyped_storage()
        if size > storage.nbytes() - tensor.storage_offset() * tensor.element_size():
            raise ModelError(
                f"{path}: tensor {key} of shape {tuple(tensor.shape)} claims {size} bytes but its data holds "
                f"{storage.nbytes()} (overlapping strides); the file is damaged or crafted, and no model is built from it."
            )
        claimed += size
        stored[storage.data_ptr()] = storage.nbytes()
    if claimed > 2 * sum(stored.values()) + (1 << 20):
        raise ModelError(
            f"{path}: its tensors claim {claimed} bytes but the file stores {sum(stored.values())} (many tensors view "
            "the same data); the file is damaged or crafted, and no model is built from it."
        )


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

    The model is built on the meta device (no memory, no compute), after its arguments are
    bounded, only to compare key names and shapes, so a file that merely resembles the format
    fails here with a precise message rather than later in ``load_state_dict``.
    """
    converted: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        prefix, param = key.rsplit(".", 1)
        if prefix in renames:
            converted[f"{renames[prefix]}.{param}"] = tensor
        else:
            unknown.append(key)
    try:
        expected = expected_shapes(model, kwargs)
    except ModelError as exc:
        raise ModelError(f"{source} checkpoint implies an unsupported architecture: {exc}") from exc
    problems = shape_problems(expected, {key: tuple(value.shape) for key, value in converted.items()}, unknown)
    if problems:
        raise ModelError(
            f"Checkpoint looks like {source} but does not fit the inferred {_describe(model, kwargs)}: {problems}."
        )
    return ImportedModel(
        model=model, kwargs=kwargs, state_dict=converted, value_range=value_range, source=source
    )
