"""Measurement helpers shared by the benchmark scripts (never imported by i2i)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


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


def matmul_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None) -> float:
    """Measured FLOP/s of a large square matrix product on ``device``: the practical ceiling that
    achieved figures are compared with."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = time_calls(lambda: a @ b, device, steps=10 if device.type == "cuda" else 3, warmup=2)
    return 2 * n**3 / seconds
