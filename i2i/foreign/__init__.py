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
- leftthomas/SRGAN ``Generator`` (``netG_epoch_<scale>_<epoch>.pth``);
- ESRGAN / Real-ESRGAN ``RRDBNet`` (``RealESRGAN_x4plus.pth``, ``RealESRGAN_x2plus.pth``,
  ``RealESRGAN_x4plus_anime_6B.pth``; x4, x2 and x1 read from the shapes), in Real-ESRGAN's key
  layout, the original ESRGAN repository's ``model.N`` layout that most community ESRGAN models
  use (x1, x2, x4, x8: one nearest-upsampling conv per factor 2) and its later ``RRDB_trunk``
  layout (``RRDB_ESRGAN_x4.pth``);
- Real-ESRGAN ``SRVGGNetCompact`` (``realesr-animevideov3.pth``, ``realesr-general-x4v3.pth``);
- Real-ESRGAN ``UNetDiscriminatorSN`` (``RealESRGAN_x4plus_netD.pth``), spectral norm included.
  Real-ESRGAN files are BasicSR-wrapped, ``params_ema`` preferred as above.

New formats are added as a module of this package with its :class:`ForeignFormat` records (a
detector plus a converter each), listed in :data:`FORMATS`.

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
- ESRGAN / Real-ESRGAN files: see :mod:`i2i.foreign.realesrgan` (an old-layout file with one
  upsampling conv is read as x2, not ESRGAN's rare x3; a compact model without PReLU weights as
  ReLU; the U-Net discriminator with its skip connections on).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from i2i.errors import ModelError
from i2i.foreign.common import (
    ForeignFormat,
    ImportedModel,
    _strip_module_prefix,
    check_model_arguments,
    check_tensor_storage,
)
from i2i.foreign.junyanz import JUNYANZ_FORMATS
from i2i.foreign.realesrgan import REALESRGAN_FORMATS
from i2i.foreign.sr import SR_FORMATS, _unwrap_basicsr
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


#: Every supported format, tried in order; the first whose ``matches`` accepts the keys converts.
FORMATS: list[ForeignFormat] = [*JUNYANZ_FORMATS, *SR_FORMATS, *REALESRGAN_FORMATS]


# ---------------------------------------------------------------------------------------------
# Public API


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Load a checkpoint file safely (``weights_only=True``, on CPU) and return its top-level dict.

    Raises :class:`~i2i.errors.ModelError` naming the file when it is missing, when it is
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
    """:func:`read_state_dict` then :func:`import_state_dict`; errors name the file. A file whose
    tensors claim more bytes than it stores is refused (:func:`~i2i.foreign.common.check_tensor_storage`)."""
    state = read_state_dict(path)
    check_tensor_storage(state, path)
    try:
        return import_state_dict(state)
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from exc


def build_imported(imported: ImportedModel) -> nn.Module:
    """Build the registered model, load the imported weights strictly and switch to ``eval()``.
    The arguments are bounded first (:func:`~i2i.foreign.common.check_model_arguments`)."""
    check_model_arguments(imported.model, imported.kwargs)
    model = create_model(imported.model, **imported.kwargs)
    model.load_state_dict(imported.state_dict, strict=True)
    return model.eval()
