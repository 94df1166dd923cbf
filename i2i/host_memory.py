"""Keep freed host memory for reuse, so CPU work does not pay page faults on every new tensor.

glibc serves each allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it to the kernel on ``free``. A convolution network on the CPU allocates and frees tensors
of tens to hundreds of MiB many times a second, so every output is first-touched page by page, in
the kernel. Turning ``mmap`` off for the heap and raising the trim threshold makes glibc keep freed
blocks and hand them out again, as CUDA's caching allocator does on the device: the bundled x4
model runs at 105 instead of 50 GFLOP/s on two cores, and pix2pix at batch 16 trains about 1.1-1.3x
faster (docs/benchmarks.md). The cost: the process keeps its peak size until it exits.

It is process-wide, so it is applied once and only where i2i owns the process's heavy work (the
trainer and the translator on the CPU). ``I2I_HOST_MEMORY_CACHE=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_host_memory", "kept_free_bytes"]

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

_applied: bool | None = None
_libc = None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]


def keep_freed_host_memory() -> bool:
    """Make glibc keep freed large blocks for reuse; True when that is in effect.

    A no-op returning False off glibc (macOS, Windows, musl) or when ``I2I_HOST_MEMORY_CACHE=0``.
    """
    global _applied, _libc
    if _applied is not None:
        return _applied
    if os.environ.get("I2I_HOST_MEMORY_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    _applied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc
            return False
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        # Large blocks from the heap (which can be reused) instead of mmap; never trim it.
        _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
        _libc = libc if _applied else None
    return _applied


def kept_free_bytes() -> int:
    """Bytes this process holds freed for reuse (0 unless :func:`keep_freed_host_memory` is in
    effect); free memory to the process though the kernel counts them as used."""
    mallinfo2 = getattr(_libc, "mallinfo2", None)  # glibc 2.33 and later
    if mallinfo2 is None:
        return 0
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)
