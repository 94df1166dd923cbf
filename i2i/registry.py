"""The one registry of model architectures.

An architecture is registered under a name with ``@register_model`` on its ``nn.Module`` class (or
on a factory function); variants preset some keyword arguments, declared beside the class (timm's
declarative variants)::

    @register_model("unet_256", num_downs=8)
    @register_model("unet")
    class UNetGenerator(nn.Module): ...

A registered class records how each instance was built (diffusers' ``register_to_config``):
``module.model_spec`` is ``{"name": ..., "kwargs": {...}}`` however the instance was created, so any
instance can be saved as a self-describing file and rebuilt with :func:`create_model`.

Each name has a **role**: ``"generator"`` (the default: it maps images to images and may be
translated with, exported or loaded as a ``--model``) or ``"discriminator"`` (it scores images
while training; ``@register_model("patchgan", role="discriminator")``). :func:`model_role` is the
one place that answers which a name is.

Weights are initialised by whoever trains the model (a task, through
:func:`i2i.layers.init_weights` with its ``init_type`` and ``init_gain``); a model built alone has
PyTorch's default initialisation, and a loaded one the file's weights.

This module never imports the models: model modules import it to register themselves, and
:mod:`i2i.models` imports every built-in model module and offers the look-ups below with the
built-ins loaded.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from torch import nn

from i2i.errors import ModelError

__all__ = ["ROLES", "register_model", "create_model", "list_models", "model_role", "model_signature", "model_spec"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

#: What a registered architecture is for.
ROLES = ("generator", "discriminator")


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    preset: dict[str, Any] = field(default_factory=dict)
    role: str = "generator"


_MODELS: dict[str, _Entry] = {}


def register_model(name: str, *, role: str = "generator", **preset: Any) -> Callable[[Builder], Builder]:
    """Register an ``nn.Module`` class or factory under ``name`` (a decorator).

    ``role`` is ``"generator"`` or ``"discriminator"`` (see :func:`model_role`). ``preset``
    keyword arguments make a variant: ``create_model(name, ...)`` passes them to the builder and
    they are not accepted from the caller. A class registered without presets records its
    construction arguments on every instance as ``model_spec``.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")

    def decorator(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = _Entry(builder, dict(preset), role)
        if isinstance(builder, type) and not preset:
            _record_construction(builder, name)
        return builder

    return decorator


def _set_model_spec(module: nn.Module, spec: dict[str, Any]) -> None:
    # Through setattr: nn.Module types its attributes as tensors or modules, and this is neither.
    setattr(module, "model_spec", spec)


def model_spec(module: nn.Module) -> dict[str, Any]:
    """``{"name": ..., "kwargs": {...}}``: what rebuilds ``module`` through :func:`create_model`,
    recorded when a registered model is constructed."""
    spec = getattr(module, "model_spec", None)
    if not isinstance(spec, dict):
        raise ModelError(f"{type(module).__name__} was not built from a registered model, so it cannot be exported.")
    return spec


def _record_construction(cls: type, name: str) -> None:
    """Wrap ``cls.__init__`` so each instance keeps its name and full keyword arguments."""
    init: Callable[..., None] = getattr(cls, "__init__")  # the class's own, or the one it inherits
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(signature.parameters)))  # self
        # A registered subclass's wrapper runs last, so the most derived class names the instance.
        _set_model_spec(self, {"name": name, "kwargs": arguments})

    cls.__init__ = __init__  # type: ignore[misc]


def _entry(name: str) -> _Entry:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelError(f"Unknown model {name!r}.{hint} Registered models: {', '.join(sorted(_MODELS))}.")
    return _MODELS[name]


def list_models() -> list[str]:
    """Names of all registered architectures, sorted (import :mod:`i2i.models` for the built-ins)."""
    return sorted(_MODELS)


def model_role(name: str) -> str:
    """``"generator"`` or ``"discriminator"``: what the registered model ``name`` is for.

    Raises :class:`~i2i.errors.ModelError` (listing close matches) for an unknown name.
    """
    return _entry(name).role


def model_signature(name: str) -> dict[str, Any]:
    """The keyword arguments the model ``name`` accepts, with their defaults (None when required)."""
    entry = _entry(name)
    params = list(inspect.signature(entry.builder).parameters.values())
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in entry.preset
    }


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture ``name`` with keyword arguments.

    Unknown names list the close matches; unknown arguments list the valid ones
    (:class:`~i2i.errors.ModelError`). The result's ``model_spec`` names ``name`` (a variant
    keeps its own name) and every argument, so a saved file rebuilds it exactly.
    """
    entry = _entry(name)
    valid = model_signature(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ModelError(
            f"Model {name!r} got unknown argument(s) {', '.join(unknown)}. "
            f"Valid arguments: {', '.join(sorted(valid))}."
        )
    model = entry.builder(**entry.preset, **kwargs)
    _set_model_spec(model, {"name": name, "kwargs": {**valid, **kwargs}})
    return model
