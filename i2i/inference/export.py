"""Export a generator to ONNX or TorchScript with dynamic batch, height and width.

The exported graph includes the padding to the generator's size multiple (reflection) and the crop
back, so it accepts any height and width (at least the size multiple) like the translator does.
Inputs and outputs are ``(B, C, H, W)`` float32 in the generator's value range (``[-1, 1]`` for
pix2pix/CycleGAN generators, ``[0, 1]`` for SR); the output is ``scale`` x the input. The
generator's description (:class:`~i2i.checkpoint.GeneratorInfo` as JSON) is stored in the file:
ONNX ``metadata_props["i2i"]``, TorchScript extra file ``i2i.json``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.errors import UsageError
from i2i.files import atomic_write_bytes

__all__ = ["EXPORT_FORMATS", "PaddedGenerator", "export_generator", "default_export_path"]

EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class PaddedGenerator(nn.Module):
    """``model`` with reflection padding to ``multiple`` in front and the crop behind it."""

    def __init__(self, model: nn.Module, multiple: int, scale: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = int(multiple)
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if self.multiple > 1:
            pad_h = (self.multiple - h % self.multiple) % self.multiple
            pad_w = (self.multiple - w % self.multiple) % self.multiple
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.model(x)
        return y[..., : h * self.scale, : w * self.scale]


def default_export_path(model_path: str | Path, format: str) -> Path:
    """``generator.safetensors`` -> ``generator.onnx``; a run folder -> ``RUN/generator.onnx``."""
    path = Path(model_path)
    if path.is_dir():
        return path / f"generator{EXPORT_FORMATS[format]}"
    return path.with_suffix(EXPORT_FORMATS[format])


def export_generator(
    model_path: str | Path | None,
    output: str | Path,
    *,
    format: str = "onnx",
    direction: str | None = None,
    opset: int = 17,
    model: nn.Module | None = None,
    info: GeneratorInfo | None = None,
) -> Path:
    """Write the generator at ``model_path`` (or ``model`` + ``info``) as ONNX or TorchScript.

    Returns the output path. The export traces the model on a small example whose height and
    width are then marked dynamic.
    """
    if format not in EXPORT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if model is None or info is None:
        if model_path is None:
            raise ValueError("give a model file, or both model and info")
        model, info = load_generator(model_path, direction=direction)
    model = model.eval().to("cpu")
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    wrapped = PaddedGenerator(model, multiple, int(info.scale)).eval()
    in_channels = int(info.kwargs.get("in_channels", 3))
    side = max(multiple, 32) + (multiple // 2 if multiple > 1 else 1)  # not a multiple: the pad is traced
    example = torch.rand(1, in_channels, side, side + 1) * (info.value_range[1] - info.value_range[0]) + info.value_range[0]
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot write {str(output)!r}: a file is in the way of its folder; choose another --output") from None
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about Python-level shape checks and about the exporters' deprecations;
        # the checks are constant for padded inputs and the result is tested against eager mode.
        warnings.simplefilter("ignore")
        if format == "onnx":
            temp = output.with_name(f".{output.name}.tmp")
            try:
                torch.onnx.export(
                    wrapped, (example,), str(temp), dynamo=False, opset_version=opset,
                    input_names=["input"], output_names=["output"],
                    dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                  "output": {0: "batch", 2: "out_height", 3: "out_width"}},
                )
                data = temp.read_bytes()
            finally:
                temp.unlink(missing_ok=True)
            atomic_write_bytes(output, _with_metadata(data, info))
        else:
            traced = torch.jit.trace(wrapped, example, check_trace=False)
            temp = output.with_name(f".{output.name}.tmp")
            try:
                torch.jit.save(traced, str(temp), _extra_files={"i2i.json": info.to_json()})
                atomic_write_bytes(output, temp.read_bytes())
            finally:
                temp.unlink(missing_ok=True)
    return output


def _with_metadata(data: bytes, info: GeneratorInfo) -> bytes:
    try:
        import onnx
    except ImportError:  # the file works without the description
        return data
    proto = onnx.load_from_string(data)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "i2i", info.to_json()
    return proto.SerializeToString()
