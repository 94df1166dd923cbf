"""The one registry of model architectures.

Models register themselves with ``@register_model`` in their own module; ``i2i/models/__init__.py``
imports every model module explicitly, so the registry is filled by plain imports, never by
scanning folders.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "model_signature"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``name`` (a decorator)."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        return factory

    return decorator


def _ensure_loaded() -> None:
    # Importing the package registers every built-in model.
    import i2i.models  # noqa: F401


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    _ensure_loaded()
    return sorted(_MODELS)


def _factory(name: str) -> Callable[..., nn.Module]:
    _ensure_loaded()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"Unknown model {name!r}.{hint} Registered models: {', '.join(sorted(_MODELS))}."
        )
    return _MODELS[name]


def model_signature(name: str) -> dict[str, Any]:
    """The keyword arguments the model ``name`` accepts, with their defaults."""
    params = inspect.signature(_factory(name)).parameters
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in params.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture ``name`` with keyword arguments.

    Unknown names list the close matches; unknown arguments list the valid ones.
    """
    factory = _factory(name)
    valid = model_signature(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(
            f"Model {name!r} got unknown argument(s) {', '.join(unknown)}. "
            f"Valid arguments: {', '.join(sorted(valid))}."
        )
    model = factory(**kwargs)
    # Every model built here knows how to rebuild itself, so saved generator files need no flags.
    model.model_spec = {"name": name, "kwargs": {**valid, **kwargs}}
    return model
