"""ONNX Runtime as the inference backend (``--backend onnxruntime``).

The generator is exported to ONNX once (:func:`i2i.inference.export.export_generator`: dynamic
batch, height and width) into ``$I2I_HOME/onnx/`` under a name made of a hash of its weights and
description and the opset, so the next run starts at once; a ``.onnx`` file that ``i2i export``
wrote is used as it is. :class:`OnnxGenerator` is an ``nn.Module`` whose forward pass runs the
ONNX Runtime session, so the :class:`~i2i.inference.runner.Runner` under a
:class:`~i2i.inference.translator.Translator` drives it like any generator: the same channels,
alpha, tiles, batches, out-of-memory retries, checks and video pipeline.

Execution providers: the CPU's on ``--device cpu``; on ``cuda:N`` TensorRT, then CUDA, whichever the
installed onnxruntime offers (``onnxruntime-gpu``). The session runs fp32 (``--precision auto`` or
``fp32``); the exported graph is the eval-mode network, so ``--norm-mode train`` and ``--compile``
stay with the torch backend. The memory planner measures the torch network the file was exported
from (for a ``.onnx`` file: the same architecture built from its description, when i2i knows it).
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from i2i.catalogue import cache_dir
from i2i.checkpoint import GeneratorInfo, load_generator
from i2i.device import resolve_device
from i2i.errors import DeviceError, I2IError, ModelError, UsageError
from i2i.inference.export import export_generator
from i2i.inference.runner import usable_cores
from i2i.inference.translator import Translator, resolve_norm_mode

__all__ = ["BACKENDS", "OnnxGenerator", "cached_onnx", "load_onnx_translator", "onnx_cache_path", "providers_for"]

BACKENDS = ("torch", "onnxruntime")
DEFAULT_OPSET = 17
_NO_ORT = "--backend onnxruntime needs the onnxruntime package: pip install onnxruntime (onnxruntime-gpu for CUDA)"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(_NO_ORT) from None
    return onnxruntime


def providers_for(device: torch.device) -> list:
    """ONNX Runtime execution providers for ``device``, best first, among those installed.

    Raises :class:`~i2i.errors.DeviceError` when onnxruntime cannot run on that device.
    """
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    available = set(_onnxruntime().get_available_providers())
    if device.type != "cuda" or "CUDAExecutionProvider" not in available:
        raise DeviceError(
            f"--backend onnxruntime cannot run on {device}: the installed onnxruntime offers "
            f"{', '.join(sorted(available))}; install onnxruntime-gpu for CUDA, or use --device cpu or --backend torch."
        )
    index = device.index or 0
    chosen: list = []
    if "TensorrtExecutionProvider" in available:
        engines = cache_dir().parent / "onnx" / "tensorrt"
        chosen.append(("TensorrtExecutionProvider", {
            "device_id": index, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engines),
        }))
    chosen.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*chosen, "CPUExecutionProvider"]


def _session(data: bytes, device: torch.device, threads: int) -> Any:
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, threads)
    providers = providers_for(device)
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail ...) derive from Exception
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"onnxruntime cannot load the ONNX graph: {first}") from None


def _is_allocation_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "failed to allocate memory" in text or "bad_alloc" in text or "out of memory" in text


class OnnxGenerator(nn.Module):
    """A generator whose forward pass is an ONNX Runtime session on ``device``.

    ``memory_probe`` is the torch network the graph came from (or None): the runner measures
    memory with it. ``.to(device)`` moves the session too, and a deep copy gets its own session.
    """

    supports_half = False  # the session runs the fp32 graph; --precision fp16/bf16 is refused
    supports_bfloat16 = False
    name = "ONNX Runtime (--backend onnxruntime)"

    def __init__(self, data: bytes, info: GeneratorInfo, *, device: torch.device, threads: int,
                 memory_probe: nn.Module | None = None) -> None:
        super().__init__()
        self.data, self.info, self.device, self.threads = data, info, device, threads
        self.scale = int(info.scale)
        self.out_channels = int(info.kwargs.get("out_channels", 3))
        self.size_multiple = int(getattr(memory_probe, "size_multiple", 1) or 1)  # the graph pads too
        self.memory_probe = memory_probe
        self.session = _session(data, device, threads)

    def to(self, *args: Any, **kwargs: Any) -> "OnnxGenerator":
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and torch.device(device) != self.device:
            self.device = torch.device(device)
            self.session = _session(self.data, self.device, self.threads)
        return super().to(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> "OnnxGenerator":
        probe = copy.deepcopy(self.memory_probe, memo)
        return OnnxGenerator(self.data, self.info, device=self.device, threads=self.threads, memory_probe=probe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float -> ``(B, C_out, scale*H, scale*W)`` float32 on ``x``'s device."""
        try:
            if x.device.type == "cuda":
                return self._run_on_gpu(x)
            (y,) = self.session.run(["output"], {"input": x.detach().to("cpu", torch.float32).contiguous().numpy()})
        except Exception as exc:
            if _is_allocation_failure(exc):  # lets the planner lower the batch or the tile size
                raise MemoryError(f"onnxruntime: {str(exc).strip().splitlines()[0]}") from exc
            raise
        return torch.from_numpy(y).to(x.device)

    def _run_on_gpu(self, x: torch.Tensor) -> torch.Tensor:
        """Input and output stay in GPU memory (I/O binding), no copy through the host."""
        x = x.detach().to(torch.float32).contiguous()
        b, _, h, w = x.shape
        y = torch.empty(b, self.out_channels, h * self.scale, w * self.scale, device=x.device)
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input("input", "cuda", index, np.float32, list(x.shape), x.data_ptr())
        binding.bind_output("output", "cuda", index, np.float32, list(y.shape), y.data_ptr())
        torch.cuda.synchronize(x.device)  # the input is written on torch's stream
        self.session.run_with_iobinding(binding)
        return y


def model_hash(module: nn.Module, info: GeneratorInfo) -> str:
    """sha256 of the weights (names, dtypes, shapes, values) and the generator's description."""
    digest = hashlib.sha256(info.to_json().encode())
    for name, tensor in sorted(module.state_dict().items()):
        plain = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{plain.dtype}:{tuple(plain.shape)}".encode())
        digest.update(plain.reshape(-1).view(torch.uint8).numpy().tobytes() if plain.numel() else b"")
    return digest.hexdigest()


def onnx_cache_path(module: nn.Module, info: GeneratorInfo, opset: int = DEFAULT_OPSET) -> Path:
    """Where the export of ``module`` at ``opset`` is cached: ``$I2I_HOME/onnx/HASH-opsetN.onnx``."""
    return cache_dir().parent / "onnx" / f"{model_hash(module, info)[:32]}-opset{opset}.onnx"


def cached_onnx(module: nn.Module, info: GeneratorInfo, *, opset: int = DEFAULT_OPSET,
                on_export: Callable[[Path], None] | None = None) -> Path:
    """The cached ONNX export of ``module``, exported (atomically) when not there yet;
    ``on_export(path)`` is called before an export starts."""
    path = onnx_cache_path(module, info, opset)
    if not path.is_file():
        if on_export is not None:
            on_export(path)
        export_generator(None, path, model=module, info=info, opset=opset, overwrite=True)
    return path


def _info_of_onnx_file(path: Path) -> GeneratorInfo:
    """The generator description ``i2i export`` stores in the file's metadata."""
    session = _session(path.read_bytes(), torch.device("cpu"), 1)
    text = session.get_modelmeta().custom_metadata_map.get("i2i")
    if not text:
        raise ModelError(
            f"{str(path)!r} has no i2i description (metadata 'i2i'), so its value range and scale are unknown; "
            "export it with `i2i export` (with the onnx package installed), or give the generator file itself."
        )
    try:
        return GeneratorInfo.from_json(text)
    except ModelError as exc:
        raise ModelError(f"{str(path)!r}: {exc}") from None


def _architecture_probe(info: GeneratorInfo) -> nn.Module | None:
    """The architecture ``info`` describes with random weights (only its memory use matters), or
    None when i2i cannot build it (a community model)."""
    from i2i.models import create_model

    try:
        return create_model(info.model, **info.kwargs).eval()
    except (I2IError, TypeError, ValueError):
        return None


def load_onnx_translator(
    spec: str | Path, *, direction: str | None = None, device: str | torch.device = "cpu", opset: int = DEFAULT_OPSET,
    on_export: Callable[[Path], None] | None = None, **options: Any,
) -> Translator:
    """A :class:`Translator` whose generator runs in ONNX Runtime.

    ``spec`` is a ``.onnx`` file from ``i2i export``, or anything ``--model`` takes (exported once
    into the cache, see :func:`cached_onnx`). ``options`` are the translator's.
    """
    _onnxruntime()
    if options.get("compile"):
        raise UsageError("--compile is for --backend torch; onnxruntime optimises its graph itself")
    resolved = resolve_device(str(device))
    local = Path(spec)
    if local.suffix.lower() == ".onnx" and local.is_file():
        data, info = local.read_bytes(), _info_of_onnx_file(local)
        probe = _architecture_probe(info)
    else:
        module, info = load_generator(spec, direction=direction)
        data, probe = cached_onnx(module, info, opset=opset, on_export=on_export).read_bytes(), module
    if resolve_norm_mode(options.get("norm_mode", "auto"), info) == "train":
        raise UsageError(
            "--backend onnxruntime runs the exported eval-mode graph, but this generator runs with train-mode "
            "normalisation (--norm-mode); add --norm-mode eval, or use --backend torch"
        )
    threads = options.get("num_threads") or usable_cores()
    generator = OnnxGenerator(data, info, device=resolved, threads=threads, memory_probe=probe)
    # The session wants plain NCHW float32: the runner hands it over in that layout.
    translator = Translator(generator, info, device=resolved, **{**options, "channels_last": False})
    translator.runner.source = f"the model {str(spec)!r}"
    return translator
