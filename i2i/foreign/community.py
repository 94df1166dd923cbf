"""Community model files, read by spandrel: the long tail of restoration architectures.

When none of i2i's own importers (:mod:`i2i.foreign`) recognises a checkpoint, `spandrel
<https://github.com/chaiNNer-org/spandrel>`_ (MIT; the library chaiNNer and ComfyUI load models
with) detects the architecture and its hyperparameters from the key names and tensor shapes:
SwinIR, HAT, DAT, SPAN, OmniSR, RealCUGAN, SCUNet, DRUNet ... (``spandrel.MAIN_REGISTRY``).
spandrel is imported only here and only when a file needs it, so ``import i2i`` stays fast.

**Safe loading.** The file is read by i2i, not by spandrel's loader (which unpickles with a
restricted unpickler and opens TorchScript): ``.safetensors`` through safetensors, anything else
through ``torch.load(weights_only=True)`` (:func:`i2i.foreign.read_state_dict`), so files that
pickle whole objects are refused exactly as for i2i's own formats.

**The generator interface.** :class:`CommunityModel` wraps spandrel's image-to-image models
(``ImageModelDescriptor``) in an ``nn.Module`` that the translator runs like any i2i generator:

- images in and out are in ``[0, 1]`` (spandrel's convention; the output is clamped to it);
- ``scale``, ``in_channels``/``out_channels``: read by spandrel from the weights;
- ``size_multiple``: spandrel's ``size_requirements.multiple_of`` (times the attention window of
  window-attention models, so tiles stay on the window grid), which the translator pads to (by
  reflection) and makes tiles a multiple of; a ``minimum`` side and a ``square`` requirement are
  met inside :meth:`CommunityModel.forward` by padding (reflection, then replication where the
  image is too small to reflect) and cropping the output back, as spandrel itself does;
- ``supports_half``/``supports_bfloat16``: spandrel's verdict, which the runner honours (fp16 is
  refused when asked for and skipped by ``--precision auto``).

Inpainting models (``MaskedImageModelDescriptor``, e.g. LaMa) need a mask and are refused.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.foreign import read_state_dict

__all__ = [
    "COMMUNITY_PREFIX",
    "CommunityModel",
    "read_checkpoint",
    "load_community_model",
    "spandrel_families",
    "not_a_community_model",
]

#: ``GeneratorInfo.model`` of a spandrel model is this prefix plus the architecture's id.
COMMUNITY_PREFIX = "spandrel:"
_CHANNELS = (1, 3)  # what the image adapter feeds and writes


def _plain_call(model: nn.Module, x: Tensor) -> Tensor:
    return model(x)


class CommunityModel(nn.Module):
    """A spandrel image-to-image model behind i2i's generator interface.

    ``forward``: ``(B, in_channels, H, W)`` in ``[0, 1]`` -> ``(B, out_channels, scale*H, scale*W)``
    in ``[0, 1]``, for any ``H`` and ``W`` (the translator pads to ``size_multiple`` itself; what
    is still missing, such as a minimum side, is padded here and cropped off). A batch runs image by
    image: spandrel's call convention is one ``(1, C, H, W)`` image, and some architectures
    rely on it (DRUNet, for one, builds a one-image noise map).

    Args:
        model: the architecture's module with its weights (``descriptor.model``).
        call: how the architecture is called (``call(model, x)``; a few return tuples or work in
            another range, and spandrel records the convention per architecture).
        architecture: spandrel's architecture id (``"SwinIR"``); ``name`` its display name.
        scale, in_channels, out_channels: from spandrel's descriptor.
        size_multiple, minimum, square: the size requirements (spandrel's, with the window).
        supports_half, supports_bfloat16: whether fp16 / bf16 give correct results.
        details: what else spandrel says (purpose, tags, tiling), recorded in the description.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        call: Callable[[nn.Module, Tensor], Tensor] = _plain_call,
        architecture: str,
        name: str = "",
        scale: int = 1,
        in_channels: int = 3,
        out_channels: int = 3,
        size_multiple: int = 1,
        minimum: int = 0,
        square: bool = False,
        supports_half: bool = True,
        supports_bfloat16: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.call = call
        self.architecture, self.name = architecture, name or architecture
        self.scale, self.in_channels, self.out_channels = int(scale), int(in_channels), int(out_channels)
        self.size_multiple, self.minimum, self.square = max(1, int(size_multiple)), int(minimum), bool(square)
        self.supports_half, self.supports_bfloat16 = bool(supports_half), bool(supports_bfloat16)
        self.details = dict(details or {})

    @classmethod
    def from_descriptor(cls, descriptor: Any, *, path: str | os.PathLike[str] = "the model") -> "CommunityModel":
        """Wrap a model spandrel loaded (``spandrel.ModelLoader().load_from_file(...)``), in eval mode.

        Raises :class:`~i2i.errors.ModelError` naming ``path`` for models i2i cannot run: those that
        need a mask (inpainting) and those with other than 1 or 3 input or output channels.
        """
        import spandrel

        name = descriptor.architecture.name
        if not isinstance(descriptor, spandrel.ImageModelDescriptor):
            raise ModelError(
                f"{path} is a {name} {descriptor.purpose.lower()} model, which needs a mask besides the image; "
                "i2i runs image-to-image models only."
            )
        for what, channels in (("input", descriptor.input_channels), ("output", descriptor.output_channels)):
            if channels not in _CHANNELS:
                raise ModelError(f"{path} is a {name} model with {channels}-channel {what}; i2i runs 1- and 3-channel models.")
        requirements = descriptor.size_requirements
        return cls(
            descriptor.model,
            # spandrel keeps each architecture's call convention here (e.g. FBCNN returns a tuple);
            # its __call__ would also pad and switch to inference mode, which i2i does itself.
            call=getattr(descriptor, "_call_fn", None) or _plain_call,
            architecture=str(descriptor.architecture.id),
            name=name,
            scale=int(descriptor.scale),
            in_channels=int(descriptor.input_channels),
            out_channels=int(descriptor.output_channels),
            size_multiple=math.lcm(int(requirements.multiple_of), _window(descriptor.model)),
            minimum=int(requirements.minimum),
            square=bool(requirements.square),
            supports_half=bool(descriptor.supports_half),
            supports_bfloat16=bool(descriptor.supports_bfloat16),
            details={
                "spandrel_version": spandrel.__version__,
                "purpose": str(descriptor.purpose),
                "tags": [str(tag) for tag in descriptor.tags],
                "tiling": descriptor.tiling.name.lower(),
            },
        ).eval()

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """``(rows, columns)`` to add below and to the right so the model accepts the size."""
        h, w = max(height, self.minimum), max(width, self.minimum)
        h, w = -(-h // self.size_multiple) * self.size_multiple, -(-w // self.size_multiple) * self.size_multiple
        if self.square:
            h = w = max(h, w)
        return h - height, w - width

    def forward(self, x: Tensor) -> Tensor:
        # Python ints: under tracing (export) the padding is fixed for the traced size, and export
        # checks the graph at another size.
        h, w = int(x.shape[-2]), int(x.shape[-1])
        pad_h, pad_w = self.padding(h, w)
        if pad_h or pad_w:
            x = _pad_bottom_right(x, pad_h, pad_w)
        if x.shape[0] == 1:
            y = self.call(self.model, x)
        else:  # spandrel's models are made for one image at a time (see the class docstring)
            y = torch.cat([self.call(self.model, x[i : i + 1]) for i in range(x.shape[0])])
        if pad_h or pad_w:
            y = y[..., : h * self.scale, : w * self.scale]
        return y.clamp(0.0, 1.0)

    def description(self) -> dict[str, Any]:
        """The fields of the generator's :class:`~i2i.checkpoint.GeneratorInfo`."""
        tags = ", ".join(self.details.get("tags") or [])
        version = self.details.get("spandrel_version", "")
        return dict(
            model=f"{COMMUNITY_PREFIX}{self.architecture}",
            kwargs={"in_channels": self.in_channels, "out_channels": self.out_channels},
            value_range=(0.0, 1.0),
            scale=self.scale,
            task="srgan" if self.scale > 1 else "",
            source=f"spandrel {version} ({self.name}{': ' + tags if tags else ''})",
            extra={
                **self.details,
                "architecture": self.name,
                "size_requirements": {"multiple": self.size_multiple, "minimum": self.minimum, "square": self.square},
                "supports_half": self.supports_half,
                "supports_bfloat16": self.supports_bfloat16,
            },
        )

    def extra_repr(self) -> str:
        return f"architecture={self.architecture!r}, scale={self.scale}, size_multiple={self.size_multiple}"


def _window(model: nn.Module) -> int:
    """The attention window of a window-attention architecture (SwinIR, HAT, Swin2SR, OmniSR ...:
    a top-level ``window_size``), else 1.

    These models pad the image to a multiple of the window themselves (by reflection, mostly) and
    are not shift-invariant across windows: a tile whose origin is off the window grid partitions
    the same pixels differently and its output differs well inside the tile. Making the window
    part of the size multiple pads on the host instead (the same reflection) and keeps every tile
    on the grid. (OmniSR pads with zeros itself; with the window in the multiple its bottom and
    right borders see reflected pixels instead, a difference confined to those borders.)
    """
    window = getattr(model, "window_size", None)
    sizes = [window] if isinstance(window, int) else list(window) if isinstance(window, (tuple, list)) else []
    if not sizes or not all(isinstance(size, int) and 0 < size <= 64 for size in sizes):
        return 1
    return math.lcm(*sizes)


def _pad_bottom_right(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Reflect as far as the image allows (``side - 1``), then replicate the rest (spandrel's rule)."""
    h, w = x.shape[-2], x.shape[-1]
    reflect_h, reflect_w = min(pad_h, h - 1), min(pad_w, w - 1)
    if reflect_h or reflect_w:
        x = F.pad(x, (0, reflect_w, 0, reflect_h), mode="reflect")
    if pad_h > reflect_h or pad_w > reflect_w:
        x = F.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode="replicate")
    return x


# ---------------------------------------------------------------------------------------------
# Reading and recognising files


def _is_safetensors(path: Path) -> bool:
    """By name, or by content: an 8-byte little-endian header length, then the JSON header."""
    if path.suffix.lower() == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level dict of a foreign checkpoint, read safely on the CPU.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)`` (:func:`i2i.foreign.read_state_dict`, which refuses pickled
    objects). Raises :class:`~i2i.errors.ModelError` naming the file when it cannot be read.
    """
    path = Path(path)
    if not path.is_file() or not _is_safetensors(path):
        return read_state_dict(path)
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {first}).") from exc


def spandrel_families() -> list[str]:
    """The architectures spandrel recognises, by display name, in its registry's order."""
    import spandrel

    return [support.architecture.name for support in spandrel.MAIN_REGISTRY.architectures("insertion")]


def not_a_community_model() -> str:
    """The sentence that ends an "unrecognised file" error: what spandrel would have read."""
    try:
        import spandrel
    except ImportError:
        return "spandrel, which reads many community architectures, is not installed (pip install spandrel)."
    return f"Not a spandrel model either (spandrel {spandrel.__version__} reads: {', '.join(spandrel_families())})."


def _detect(state: Mapping[str, Any]) -> Any | None:
    """The first spandrel architecture (in detection order) that claims ``state``, or None."""
    import spandrel

    for support in spandrel.MAIN_REGISTRY.architectures("detection"):
        try:
            if support.detect(state):
                return support.architecture
        except Exception:  # noqa: BLE001 - a detector that trips over odd values has not recognised the file
            continue
    return None


def load_community_model(state: Mapping[str, Any], path: str | os.PathLike[str]) -> CommunityModel | None:
    """The model spandrel recognises in ``state`` (read from ``path``), in eval mode; None when no
    spandrel architecture recognises it.

    Raises :class:`~i2i.errors.ModelError` when an architecture recognises the file but cannot build
    it, or when the model is not an image-to-image model i2i can run.
    """
    try:
        import spandrel
    except ImportError:
        return None
    state = spandrel.canonicalize_state_dict(dict(state))
    if not all(isinstance(value, Tensor) for value in state.values()):
        return None
    architecture = _detect(state)
    if architecture is None:
        return None
    try:
        with warnings.catch_warnings():
            # Architectures warn about their own internals (torch.meshgrid indexing and the like),
            # nothing a user of the file can act on.
            warnings.simplefilter("ignore")
            descriptor = architecture.load(dict(state))
    except Exception as exc:  # noqa: BLE001 - spandrel raises anything when the weights do not fit
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(
            f"{path}: spandrel recognises a {architecture.name} model but cannot build it "
            f"({type(exc).__name__}: {first}); the file may be damaged or a variant spandrel does not know."
        ) from exc
    return CommunityModel.from_descriptor(descriptor, path=path)
