"""The model process's C allocator (glibc's malloc on Linux): keep memory freed by one step
of a model for the next, instead of handing it back to the system.

PyTorch on a CPU frees and allocates its large activation buffers at every layer of every
step. glibc returns allocations above its mmap threshold to the system as soon as they are
freed, so the next layer faults the same memory in again, a page at a time, each page zeroed
by the kernel: tiny-flux at 1024x1024 took 290,000 page faults and 0.7 s of system time a
call, about 40 % of the call (docs/benchmarks.md). With a high threshold, a top pad and no
trimming, freed buffers stay in the process's heap and the next step reuses them. The price
is memory: the process keeps what its largest batch needed (as PyTorch's CUDA allocator
does on a GPU), until a model is unloaded, when ``release`` hands free memory back.

Off glibc (macOS, musl) both do nothing; GPU memory is not touched by either.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from functools import cache

log = logging.getLogger("imagegate.models")

# mallopt's parameters (malloc.h) and its largest value (it takes an int).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1
_TOP_PAD = 1024**3  # address space reserved as the heap grows; it costs no memory until used


@cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Make this process's malloc keep and reuse freed memory; whether it could."""
    libc = _glibc()
    if libc is None:
        return False
    applied = all(
        libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, _INT_MAX),
            (_M_TRIM_THRESHOLD, _INT_MAX),
            (_M_TOP_PAD, _TOP_PAD),
        )
    )
    if not applied:
        log.warning("this C library refused malloc settings; the model keeps its defaults")
    return applied


def release() -> None:
    """Hand the heap's free memory back to the system (after unloading a model)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(ctypes.c_size_t(0))
