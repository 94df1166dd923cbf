"""Export a generator to ONNX or TorchScript with dynamic batch, height and width.

The exported graph includes the padding to the generator's size multiple (reflection) and the crop
back, so it accepts any height and width (at least the size multiple) like the translator does.
Inputs and outputs are ``(B, C, H, W)`` float32 in the generator's value range (``[-1, 1]`` for
pix2pix/CycleGAN generators, ``[0, 1]`` for SR); the output is ``scale`` x the input. The
generator's description (:class:`~i2i.checkpoint.GeneratorInfo` as JSON) is stored in the file:
ONNX ``metadata_props["i2i"]``, TorchScript extra file ``i2i.json``.

Before anything is written, the traced graph is run at another batch and size and compared with the
model itself. The output never replaces the model being exported (nor a run folder's generator),
and replaces another existing file only with ``overwrite=True`` (``i2i export --overwrite``).
Community models (spandrel's, :mod:`i2i.foreign.community`) export when their architecture
traces to a size-independent graph (convolutional ones such as SPAN); those whose
Python code fixes sizes (window attention such as SwinIR and HAT) or that the ONNX exporter cannot
express (SAFMN's adaptive pooling) are refused with a :class:`~i2i.errors.ModelError`. Their exported graphs take inputs of at least the architecture's
minimum side.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from i2i.checkpoint import GeneratorInfo, load_generator, locate_model
from i2i.data.io import write_problem
from i2i.errors import DataError, ModelError, UsageError
from i2i.files import atomic_write_bytes
from i2i.foreign.community import COMMUNITY_PREFIX

__all__ = ["EXPORT_FORMATS", "PaddedGenerator", "export_generator", "default_export_path"]

EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
_TOLERANCE = 1e-4  # traced vs eager, as a fraction of the value range: the same kernels run


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
    """``generator.safetensors`` -> ``generator.onnx`` beside it; a run folder ->
    ``RUN/generator.onnx``; a name or URL (``RealESRGAN_x4plus``, ``https://.../net.pth``,
    ``hf://ORG/REPO/net.pth``) -> ``net.onnx`` in the current folder, never inside the cache."""
    path = Path(model_path)
    if path.is_dir():
        return path / f"generator{EXPORT_FORMATS[format]}"
    if path.is_file():
        return path.with_suffix(EXPORT_FORMATS[format])
    stem = Path(str(model_path).rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]).stem or "generator"
    return Path(stem + EXPORT_FORMATS[format])


def export_generator(
    model_path: str | Path | None,
    output: str | Path,
    *,
    format: str = "onnx",
    direction: str | None = None,
    opset: int = 17,
    model: nn.Module | None = None,
    info: GeneratorInfo | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the generator at ``model_path`` (or ``model`` + ``info``) as ONNX or TorchScript.

    Returns the output path. The export traces the model on a small example whose height and
    width are then marked dynamic; the traced graph is then run at another size and batch and
    compared with the model itself. A generator whose graph does not generalise (an architecture
    that fixes sizes in Python code, as some community models do) raises
    :class:`~i2i.errors.ModelError` naming it, and nothing is written.

    Raises:
        UsageError: ``output`` is the model file being exported (or a generator of the run folder
            being exported), or exists and ``overwrite`` is False; nothing is written.
    """
    if format not in EXPORT_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    output = Path(output)
    if model is None or info is None:
        if model_path is None:
            raise ValueError("give a model file, or both model and info")
        local = Path(model_path)
        _check_output(output, local if local.exists() else None, overwrite)  # before a name or URL downloads
        model_path = locate_model(model_path)
        _check_output(output, model_path, overwrite=True)  # the file a name or URL stands for
        model, info = load_generator(model_path, direction=direction)
    else:
        _check_output(output, None, overwrite)
    model = model.eval().to("cpu")
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    wrapped = PaddedGenerator(model, multiple, int(info.scale)).eval()
    example, check = _examples(model, info, multiple)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot write {str(output)!r}: a file is in the way of its folder; choose another --output") from None
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about Python-level shape checks and about the exporters' deprecations;
        # the checks are constant for padded inputs and the graph is checked against eager mode.
        warnings.simplefilter("ignore")
        with _export_errors(info, format):
            traced = torch.jit.trace(wrapped, example, check_trace=False)
        _check_dynamic(traced, wrapped, check, info)
        with _write_errors(output):
            handle, temp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        os.close(handle)
        temp = Path(temp_name)
        try:
            if format == "onnx":
                with _export_errors(info, format), _native_stdout_silenced():
                    torch.onnx.export(
                        wrapped, (example,), str(temp), dynamo=False, opset_version=opset,
                        input_names=["input"], output_names=["output"],
                        dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                      "output": {0: "batch", 2: "out_height", 3: "out_width"}},
                    )
            with _write_errors(output):
                if format != "onnx":
                    torch.jit.save(traced, str(temp), _extra_files={"i2i.json": info.to_json()})
                data = temp.read_bytes()
                atomic_write_bytes(output, _with_metadata(data, info) if format == "onnx" else data)
        finally:
            temp.unlink(missing_ok=True)
    return output


@contextlib.contextmanager
def _write_errors(output: Path) -> Iterator[None]:
    """A full, read-only or forbidden disk as one line naming the output; nothing is left under
    its name (the write is atomic)."""
    try:
        yield
    except OSError as error:
        problem = write_problem(error)
        if problem is None:
            raise
        raise DataError(f"cannot write the export '{output}': {problem}") from None


def _check_output(output: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse an output that is the model being exported (a run folder: any of its generator
    files), whatever ``overwrite`` says, and any other existing file unless ``overwrite``."""
    inputs = sorted(source.glob("*.safetensors")) if source is not None and source.is_dir() else [source]
    for item in inputs:
        if item is not None and output.exists() and os.path.samefile(item, output):
            raise UsageError(
                f"--output {str(output)!r} is the model being exported ({str(item)!r}); choose another output file."
            )
    if output.is_dir():
        raise UsageError(f"--output {str(output)!r} is a folder; give a file name (e.g. {output / 'generator.onnx'}).")
    if output.exists() and not overwrite:
        raise UsageError(f"{str(output)!r} already exists; pass --overwrite to replace it, or choose another --output.")


def _examples(model: nn.Module, info: GeneratorInfo, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tracing example (one image, sides not multiples, so the pad is traced) and a check input
    of another batch and size, both at least the model's minimum side, in its value range."""
    in_channels = int(info.kwargs.get("in_channels", 3))
    side = max(multiple, 32, int(getattr(model, "minimum", 0) or 0)) + (multiple // 2 if multiple > 1 else 1)
    low, high = info.value_range
    example = torch.rand(1, in_channels, side, side + 1) * (high - low) + low
    check = torch.rand(2, in_channels, side + multiple + 2, side + 5) * (high - low) + low
    return example, check


@contextlib.contextmanager
def _export_errors(info: GeneratorInfo, format: str) -> Iterator[None]:
    """A community model that the tracer or exporter cannot handle is a ModelError naming its
    architecture; for i2i's own models such a failure is a bug and keeps its traceback."""
    try:
        yield
    except Exception as exc:
        if not info.model.startswith(COMMUNITY_PREFIX):
            raise
        first = str(exc).strip().splitlines()[0].split(". ")[0][:200] if str(exc).strip() else ""
        raise ModelError(
            f"{info.model} cannot be exported to {format} ({type(exc).__name__}: {first}); "
            "run it with i2i upscale/translate/video instead."
        ) from exc


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Silence what C++ code writes to the process's stdout: the ONNX exporter prints its whole
    graph there when it fails, although only the one-line error is for the user."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _check_dynamic(traced: nn.Module, eager: nn.Module, x: torch.Tensor, info: GeneratorInfo) -> None:
    """Raise ModelError unless the traced graph gives the model's own output at ``x``'s size."""
    size = f"{x.shape[-2]}x{x.shape[-1]} (batch {x.shape[0]})"
    try:
        got = traced(x)
    except Exception as exc:  # noqa: BLE001 - any failure means the graph is tied to the traced size
        problem = f"fails at {size} ({type(exc).__name__})"
    else:
        want = eager(x)
        if got.shape != want.shape:
            problem = f"gives {tuple(got.shape)} instead of {tuple(want.shape)} at {size}"
        else:
            difference = float((got - want).abs().max()) / (info.value_range[1] - info.value_range[0])
            if difference <= _TOLERANCE:
                return
            problem = f"differs from the model by up to {difference:.2g} of the value range at {size}"
    raise ModelError(
        f"{info.model} cannot be exported with dynamic sizes: its traced graph {problem} (the architecture "
        "fixes sizes in Python code); run it with i2i upscale/translate/video instead."
    )


def _with_metadata(data: bytes, info: GeneratorInfo) -> bytes:
    try:
        import onnx
    except ImportError:  # the file works without the description
        return data
    proto = onnx.load_from_string(data)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "i2i", info.to_json()
    return proto.SerializeToString()
