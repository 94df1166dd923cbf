"""Files i2i writes and reads: self-describing generator files, training state, atomic writes.

A **generator file** (``*.safetensors``) holds the weights as tensors and, in the safetensors
metadata, a JSON description: the registered model name and its keyword arguments, the value range
and what the model does (task, direction, scale). ``i2i translate --model FILE`` needs no flags.

**Training state** (``state.pt``) holds everything a run needs to continue exactly; it contains only
tensors, numbers, strings and containers of them, so it loads with ``weights_only=True``.

Files written by other projects (pytorch-CycleGAN-and-pix2pix ``*_net_G.pth`` and so on) are
imported by :mod:`i2i.foreign`.

Loading checks a file before it builds anything: the description must be well-formed JSON with
fields of the right types, name a registered *generator* (a discriminator is refused) and give it
arguments within :data:`i2i.foreign.common.MODEL_ARGUMENT_LIMITS`; the model is then built on the
meta device and its tensor names and shapes compared with the file's (read from the header, no
data loaded). Only a file that matches is built for real, so a small file cannot make i2i
allocate more than its weights. Every refusal is a :class:`~i2i.errors.ModelError` naming the file.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from i2i.errors import ModelError
from i2i.files import atomic_write_bytes
from i2i.foreign.common import check_tensor_storage, expected_shapes, shape_problems
from i2i.models import create_model, model_role

__all__ = [
    "GeneratorInfo",
    "save_generator",
    "load_generator",
    "read_generator_info",
    "save_training_state",
    "load_training_state",
    "GENERATOR_SUFFIX",
    "BUNDLED_MODELS",
    "bundled_model_path",
]

GENERATOR_SUFFIX = ".safetensors"
_METADATA_KEY = "i2i"
FORMAT_VERSION = 1
#: Generators shipped inside the package (``i2i/assets``), loadable by name: ``load_generator("x4")``.
BUNDLED_MODELS = {"x4": "sr_x4.safetensors"}


def bundled_model_path(name: str) -> Path:
    """The file of the bundled generator ``name`` (a key of :data:`BUNDLED_MODELS`)."""
    from importlib import resources

    return Path(str(resources.files("i2i.assets") / BUNDLED_MODELS[name]))


@dataclass(frozen=True)
class GeneratorInfo:
    """What a generator file says about its network.

    ``value_range`` is the range of input and output tensors; ``scale`` is output size / input size
    (1 for translation); ``task`` and ``direction`` say what the network was trained to do.
    """

    model: str
    kwargs: dict
    value_range: tuple[float, float] = (-1.0, 1.0)
    scale: int = 1
    task: str = ""
    direction: str = ""
    source: str = "i2i"
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "model": self.model,
                "kwargs": self.kwargs,
                "value_range": list(self.value_range),
                "scale": self.scale,
                "task": self.task,
                "direction": self.direction,
                "source": self.source,
                "extra": self.extra,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "GeneratorInfo":
        """Parse :meth:`to_json`'s output; a :class:`ModelError` says what is malformed."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _malformed(f"is not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(d), "number")
            raise _malformed(f"is a JSON {kind}, not an object")
        for key in ("model", "kwargs"):
            if key not in d:
                raise _malformed(f"has no {key!r} field")
        for key, (check, what) in _FIELD_TYPES.items():
            if key in d and not check(d[key]):
                raise _malformed(f"field {key!r} should be {what}, got {json.dumps(d[key])[:60]}")
        if d.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ModelError(f"it was written by a newer i2i (format version {d['format_version']}; this one reads "
                             f"up to {FORMAT_VERSION}); upgrade i2i to load it.")
        return cls(
            model=d["model"],
            kwargs=d["kwargs"],
            value_range=tuple(float(v) for v in d.get("value_range", (-1.0, 1.0))),  # type: ignore[arg-type]
            scale=int(d.get("scale", 1)),
            task=d.get("task", ""),
            direction=d.get("direction", ""),
            source=d.get("source", "i2i"),
            extra=d.get("extra", {}),
        )


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_range(value: Any) -> bool:
    numbers = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return numbers and value[0] < value[1]


_FIELD_TYPES: dict[str, tuple[Any, str]] = {
    "format_version": (_is_whole, "a whole number"),
    "model": (lambda v: isinstance(v, str), "a string"),
    "kwargs": (lambda v: isinstance(v, dict), "an object of argument names and values"),
    "value_range": (_is_range, "two numbers, low then high"),
    "scale": (lambda v: _is_whole(v) and 1 <= v <= 16, "a whole number from 1 to 16"),
    "task": (lambda v: isinstance(v, str), "a string"),
    "direction": (lambda v: isinstance(v, str), "a string"),
    "source": (lambda v: isinstance(v, str), "a string"),
    "extra": (lambda v: isinstance(v, dict), "an object"),
}
_REEXPORT = "The file is damaged or was not written by i2i; export it again from its training run."


def _malformed(problem: str) -> ModelError:
    return ModelError(f"its i2i metadata {problem}. {_REEXPORT}")


def _plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    # Unwrap DDP / torch.compile wrappers so the file has the plain module's names.
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_generator(path: str | Path, model: nn.Module, info: GeneratorInfo) -> None:
    """Write ``model``'s weights and ``info`` as one self-describing safetensors file (atomically)."""
    data = safetensors_save(_plain_state_dict(model), metadata={_METADATA_KEY: info.to_json()})
    atomic_write_bytes(path, data)


def read_generator_info(path: str | Path) -> GeneratorInfo | None:
    """The description in an i2i generator file, or None if ``path`` is not one.

    Raises:
        ModelError: the description is there but malformed; the message names the file.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return None
    text = meta.get(_METADATA_KEY)
    if not text:
        return None
    try:
        return GeneratorInfo.from_json(text)
    except ModelError as exc:
        raise ModelError(f"{str(path)!r}: {exc}") from None


def load_generator(path: str | Path, *, direction: str | None = None) -> tuple[nn.Module, GeneratorInfo]:
    """Build the generator stored at ``path``, in eval mode on the CPU.

    ``path`` may be an i2i generator file, a training run folder (its exported generator is used;
    ``direction`` picks one when a run has two), or a file written by a supported foreign project
    (see :mod:`i2i.foreign`), or the name of a generator bundled with i2i (:data:`BUNDLED_MODELS`,
    e.g. ``"x4"``) when no file of that name exists. The file is checked before anything is
    built (see the module's docstring); a discriminator is refused.
    """
    path = locate_model(path)
    if path.is_dir():
        path = _generator_in_run(path, direction)
    info = read_generator_info(path)
    if info is not None and direction and info.direction and info.direction != direction:
        raise ModelError(
            f"{str(path)!r} translates {info.direction}, not {direction}; use the run's other generator "
            "(or pass the run folder with --direction)."
        )
    if info is None:
        return load_foreign_generator(path)
    _check_generator_file(path, info)
    from safetensors.torch import load_file

    model = create_model(info.model, **info.kwargs)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval(), info


def _refuse_discriminator(path: Path, model: str) -> None:
    if model_role(model) == "discriminator":
        raise ModelError(
            f"{str(path)!r} is a discriminator ({model}), not a generator; use its run's generator file "
            "(*_net_G.pth, *_net_G_A.pth, or the run's .safetensors generator) instead."
        )


def _check_generator_file(path: Path, info: GeneratorInfo) -> None:
    """Refuse, before building anything, a file whose description names no registered generator,
    gives it arguments out of bounds, or does not match the tensors the file holds."""
    try:
        model_role(info.model)  # an unknown name: ModelError with the close and the registered names
    except ModelError as exc:
        raise _unbuildable(path, exc) from None
    _refuse_discriminator(path, info.model)
    try:
        expected = expected_shapes(info.model, info.kwargs)
    except ModelError as exc:
        raise _unbuildable(path, exc) from None
    with safe_open(str(path), framework="pt") as f:
        found = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    problems = shape_problems(expected, found)
    if problems:
        described = f"{info.model}({', '.join(f'{k}={v!r}' for k, v in info.kwargs.items())})"
        raise ModelError(
            f"{str(path)!r} does not hold the weights its metadata describes ({described}): {problems}. {_REEXPORT}"
        )


def _unbuildable(path: Path, error: ModelError) -> ModelError:
    return ModelError(
        f"{str(path)!r}: its i2i metadata describes a model i2i cannot build: {str(error).rstrip('.')}. {_REEXPORT}"
    )


def locate_model(spec: str | Path) -> Path:
    """The file or run folder a ``--model`` spec names, tried in this order so that no name hides
    an existing file: a path that exists; a bundled generator's name (``x4``); a pretrained
    catalogue name (``horse2zebra``, ``RealESRGAN_x4plus``; see :mod:`i2i.catalogue`); an
    ``http(s)://`` URL; ``hf://ORG/REPO/FILE``. Names and URLs are downloaded once into the
    cache (``$I2I_HOME/models``) and verified.

    Raises:
        ModelError: nothing of that name; the message suggests close catalogue names.
        i2i.fetch.DownloadError: a download failed; the message names the URL and where to put
            the file by hand.
    """
    path = Path(spec)
    if _exists(path):
        return path
    if str(spec) in BUNDLED_MODELS:
        return bundled_model_path(str(spec))
    from i2i.catalogue import resolve_model_spec

    found = resolve_model_spec(str(spec))
    if found is not None:
        return found
    raise ModelError(_missing_model_message(str(spec)))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a signed URL whose query is longer than a file name may be
        return False


def _missing_model_message(spec: str) -> str:
    from i2i.catalogue import close_names

    close = close_names(spec)
    hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
    bundled = ", ".join(BUNDLED_MODELS)
    return (
        f"Model file {spec!r} does not exist.{hint} Bundled models by name: {bundled}; pretrained models "
        "by name: `i2i models --pretrained`; URLs (https://..., hf://ORG/REPO/FILE) are downloaded."
    )


def load_foreign_generator(path: Path) -> tuple[nn.Module, GeneratorInfo]:
    """A generator from a file another project wrote, in eval mode.

    i2i's own importers (:mod:`i2i.foreign`, which map the file onto i2i's registered models) are
    tried first; a file none of them recognises goes to spandrel (:mod:`i2i.foreign.community`:
    SwinIR, HAT, DAT, SPAN ...). Only when both fail is it an error, one line naming i2i's formats
    and spandrel's architectures. The file is read safely either way (safetensors, or
    ``torch.load(weights_only=True)``).
    """
    from i2i.foreign import build_imported, import_state_dict
    from i2i.foreign.community import load_community_model, not_a_community_model, read_checkpoint

    state = read_checkpoint(path)
    check_tensor_storage(state, path)  # before i2i's importers or spandrel build anything from it
    try:
        imported = import_state_dict(state)
    except ValueError as own_error:  # ModelError, or a converter's ValueError
        community = load_community_model(state, path)
        if community is None:
            raise ModelError(f"{path}: {own_error} {not_a_community_model()}") from None
        return community.eval(), GeneratorInfo(**community.description())
    _refuse_discriminator(path, imported.model)
    model = build_imported(imported)
    scale = int(getattr(model, "scale", 1))
    info = GeneratorInfo(
        model=imported.model,
        kwargs=imported.kwargs,
        value_range=(float(imported.value_range[0]), float(imported.value_range[1])),
        scale=scale,
        task="srgan" if scale > 1 else "",  # foreign upscalers (BasicSR, leftthomas) are SR models
        source=imported.source,
    )
    return model.eval(), info


def _generator_in_run(run_dir: Path, direction: str | None) -> Path:
    candidates = sorted(run_dir.glob(f"*{GENERATOR_SUFFIX}"))
    infos = [(p, i) for p in candidates if (i := read_generator_info(p)) is not None]
    if not infos:
        raise ModelError(
            f"{str(run_dir)!r} holds no generator file (*{GENERATOR_SUFFIX}). Point --model at a "
            "generator file or a finished training run folder."
        )
    if direction:
        matching = [p for p, i in infos if i.direction == direction]
        if not matching:
            found = ", ".join(f"{p.name} ({i.direction or 'no direction'})" for p, i in infos)
            raise ModelError(f"No generator for direction {direction} in {str(run_dir)!r}; found {found}.")
        infos = [(p, i) for p, i in infos if p in matching]
    # Prefer the EMA weights when a run exported both.
    ema = [p for p, _ in infos if p.stem.endswith("_ema")]
    if ema:
        return ema[0]
    if len(infos) > 1 and not direction:
        names = ", ".join(p.name for p, _ in infos)
        raise ModelError(f"{str(run_dir)!r} holds several generators ({names}); choose one with --direction.")
    return infos[0][0]


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write the training state atomically (``torch.save`` of tensors, numbers and containers)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training state written by :func:`save_training_state` (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)
