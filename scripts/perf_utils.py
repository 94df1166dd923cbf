"""Measurement helpers shared by the benchmark scripts (never imported by i2i)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


# Names of autocast dtypes (None: no autocast) as the benchmark tables print them.
PRECISION_NAMES = {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (forward and backward if it runs them),
    counted from the operators torch dispatches; a multiply-add counts as 2."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, *, steps: int, warmup: int) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def matmul_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, sizes: tuple[int, ...] | None = None) -> float:
    """Measured FLOP/s of large square matrix products on ``device``: the practical ceiling that
    achieved figures are compared with. The best of several sizes and repeats, because a ceiling is
    what the machine can do, and a shared machine only ever makes a run slower."""
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 2048, 3072))
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        calls = 20 if device.type == "cuda" else 1
        for _ in range(2):
            torch.mm(a, b, out=out)
        for _ in range(5):
            seconds = time_calls(lambda: torch.mm(a, b, out=out), device, steps=calls, warmup=0)
            best = max(best, 2 * n**3 / seconds)
    return best


def best_time(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int = 1) -> float:
    """Fastest single call of ``fn`` in seconds, over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        best = min(best, time_calls(fn, device, steps=1, warmup=0))
    return best


def conv_ceiling(
    device: torch.device, dtype: torch.dtype = torch.float32, *, channels: int = 64, size: int = 128,
    batch: int = 1, repeats: int = 5,
) -> float:
    """Measured FLOP/s of the operation these networks spend their time in: a 3x3 convolution,
    ``channels`` -> ``channels``, stride 1, on ``batch`` x ``size`` x ``size`` (nominal FLOPs, a
    multiply-add = 2). The best of NCHW and channels_last and of ``repeats`` calls each: like the
    matmul ceiling, it is what the machine can do, and load only makes a call slower. On the CPU
    oneDNN's 3x3 kernels beat a large ``torch.mm``, so fractions of this ceiling are the stricter."""
    flops = 2 * channels * channels * 9 * size * size * batch
    weight = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype)
    best = 0.0
    with torch.no_grad():
        for memory_format in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=memory_format)
            w = weight.contiguous(memory_format=memory_format)
            calls = 20 if device.type == "cuda" else 1  # one CPU call is milliseconds; GPU calls are microseconds
            conv = lambda: torch.nn.functional.conv2d(x, w, padding=1)  # noqa: E731
            time_calls(conv, device, steps=calls, warmup=2)
            seconds = min(time_calls(conv, device, steps=calls, warmup=0) for _ in range(repeats))
            best = max(best, flops / seconds)
    return best
