#!/usr/bin/env python
"""Each speed lever measured on its own, so the defaults rest on figures for this device.

    python scripts/bench_levers.py                 # all levers
    python scripts/bench_levers.py adam host-memory

Levers (each prints the fastest of ``--repeats`` timed calls per variant):

* ``adam``: one Adam update of unet_256's 54M parameters: torch's default (a loop over the
  parameters on the CPU), ``foreach`` and ``fused``;
* ``memory-format``: forward + backward (training) and forward alone (inference) of unet_256,
  resnet_9blocks and the bundled x4 SRResNet in NCHW and channels_last;
* ``autocast``: unet_256 forward + backward in fp32 and under bf16 autocast (fp16 too on CUDA);
* ``compile``: unet_256 forward + backward eager and under ``torch.compile`` (compile time too);
* ``host-memory``: a LeakyReLU over a 32x1080x1920 tensor and the bundled x4 model on a 480x270
  frame, with the system allocator and with :func:`i2i.host_memory.keep_freed_host_memory`, each
  in a fresh process (the setting is process-wide).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from i2i.checkpoint import load_generator
from i2i.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_utils import best_time  # noqa: E402

LEVERS = ("adam", "memory-format", "autocast", "compile", "host-memory")


def training_pass(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None):
    def run() -> None:
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            y = model(x)
        y.float().mean().backward()
    return run


def lever_adam(device: torch.device, repeats: int) -> None:
    model = create_model("unet_256").to(device)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    print(f"Adam update, unet_256 ({sum(p.numel() for p in params) / 1e6:.1f}M parameters):")
    for label, options in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), **options)
        print(f"  {label:<8} {best_time(opt.step, device, repeats=repeats, warmup=2) * 1e3:8.1f} ms")


def lever_memory_format(device: torch.device, repeats: int) -> None:
    cases = [
        ("unet_256", create_model("unet_256"), (1, 3, 256, 256)),
        ("resnet_9blocks", create_model("resnet_9blocks"), (1, 3, 256, 256)),
        ("x4 (bundled)", load_generator("x4")[0], (1, 3, 270, 480)),
    ]
    print("Memory format, seconds (fastest call):")
    print(f"  {'model':<16} {'input':<16} {'train NCHW':>10} {'train NHWC':>10} {'infer NCHW':>10} {'infer NHWC':>10}")
    for name, model, shape in cases:
        model = model.to(device)
        x = torch.rand(*shape, device=device)
        row = []
        for inference in (False, True):
            for fmt in (torch.contiguous_format, torch.channels_last):
                m = model.to(memory_format=fmt).train(not inference)
                xx = x.contiguous(memory_format=fmt)
                if inference:
                    with torch.inference_mode():
                        row.append(best_time(lambda: m(xx), device, repeats=repeats))
                else:
                    row.append(best_time(training_pass(m, xx), device, repeats=repeats))
        print(f"  {name:<16} {'x'.join(map(str, shape)):<16} " + " ".join(f"{t:>10.3f}" for t in row))


def lever_autocast(device: torch.device, repeats: int) -> None:
    model = create_model("unet_256").to(device)
    x = torch.rand(1, 3, 256, 256, device=device)
    dtypes = [None, torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    print("Autocast, unet_256 forward + backward, batch 1, 256x256:")
    for dtype in dtypes:
        seconds = best_time(training_pass(model, x, dtype), device, repeats=max(1, repeats if dtype is None or device.type == "cuda" else 1))
        print(f"  {str(dtype or 'fp32').replace('torch.', ''):<9} {seconds:8.3f} s")


def lever_compile(device: torch.device, repeats: int) -> None:
    model = create_model("unet_256").to(device)
    x = torch.rand(1, 3, 256, 256, device=device)
    eager = best_time(training_pass(model, x), device, repeats=repeats)
    compiled = torch.compile(model)
    start = time.perf_counter()
    training_pass(compiled, x)()
    compile_s = time.perf_counter() - start
    seconds = best_time(training_pass(compiled, x), device, repeats=repeats)
    print("torch.compile, unet_256 forward + backward, batch 1, 256x256:")
    print(f"  eager    {eager:8.3f} s\n  compiled {seconds:8.3f} s  (first call, compiling: {compile_s:.0f} s)")


_HOST_CHILD = """
import json, sys, torch, torch.nn.functional as F
sys.path.insert(0, {scripts!r})
from perf_utils import best_time, count_flops
from i2i.checkpoint import load_generator
from i2i.host_memory import keep_freed_host_memory
applied = keep_freed_host_memory() if {keep} else False
cpu = torch.device("cpu")
x = torch.randn(1, 32, 1080, 1920).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    lrelu = best_time(lambda: F.leaky_relu(x, 0.1), cpu, repeats={repeats})
model = load_generator("x4")[0].eval()
results = {{"applied": applied, "leaky_relu_ms": lrelu * 1e3}}
frame = torch.rand(1, 3, 270, 480)
with torch.inference_mode():
    flops = count_flops(lambda: model(frame))
    for fmt in ("nchw", "nhwc"):
        m = model.to(memory_format=torch.channels_last if fmt == "nhwc" else torch.contiguous_format)
        xx = frame.contiguous(memory_format=torch.channels_last if fmt == "nhwc" else torch.contiguous_format)
        results["x4_" + fmt + "_gflops"] = flops / best_time(lambda: m(xx), cpu, repeats={repeats}) / 1e9
print(json.dumps(results))
"""


def lever_host_memory(device: torch.device, repeats: int) -> None:
    if device.type != "cpu":
        print("host-memory: a CPU lever; skipped on", device)
        return
    print("Host memory (fresh process each):")
    print(f"  {'allocator':<22} {'LeakyReLU 32x1080x1920':>23} {'x4 NCHW GFLOP/s':>16} {'x4 NHWC GFLOP/s':>16}")
    for keep in (False, True):
        code = _HOST_CHILD.format(scripts=str(Path(__file__).resolve().parent), keep=keep, repeats=repeats)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        label = "kept for reuse" if r["applied"] else "system (returned)"
        print(f"  {label:<22} {r['leaky_relu_ms']:>20.1f} ms {r['x4_nchw_gflops']:>16.1f} {r['x4_nhwc_gflops']:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("levers", nargs="*", metavar="LEVER", help=f"any of {', '.join(LEVERS)} (default: all)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    unknown = [lever for lever in args.levers if lever not in LEVERS]
    if unknown:
        parser.error(f"unknown lever {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# device {device} ({name}); torch {torch.__version__}; {torch.get_num_threads()} threads; {datetime.date.today()}")
    for lever in args.levers or LEVERS:
        globals()["lever_" + lever.replace("-", "_")](device, args.repeats)


if __name__ == "__main__":
    main()
