"""What every foreign-format importer shares: the result type, the format record and the helpers
that read architectures from key names and tensor shapes."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from i2i.errors import ModelError
from i2i.models import create_model

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

