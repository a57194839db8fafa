"""Allocator settings snetx-train applies to its own process.

Large CPU tensors (a neuron layer's input, spikes and gradients: tens of MB each) are
fresh ``mmap`` regions under glibc's default settings, returned to the system when freed
and paid for again page by page on the next step. Raising the mmap threshold and the
trim threshold keeps them in the heap, where the next step reuses already-touched memory.
On a 2-core machine this made the fused LIF fwd+bwd at 16x16x65536 (float32) run at a
steady ~33 ms median with p90 ~35 ms, against 35-50 ms medians and p90 up to 83 ms without
(``benchmarks/RESULTS.md``); PyTorch's ``THP_MEM_ALLOC_ENABLE`` measured no better and
slowed 16 MB tensors down.

A library must not change process-wide settings behind its user's back: only the
training command calls :func:`tune_allocator`. Other programs can get the same effect
from glibc's environment variables, set before Python starts::

    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=2147483647 python train.py

``SNETX_MALLOC_TUNING=0`` turns the command's own setting off.
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers

#: what tune_allocator sets: allocations up to 1 GiB come from the heap; freed memory is
#: kept until 2 GiB of it sits unused at the top of the heap
SETTINGS = {"M_MMAP_THRESHOLD": 1 << 30, "M_TRIM_THRESHOLD": (1 << 31) - 1}


def tune_allocator():
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; returns what was applied ({} when
    turned off with ``SNETX_MALLOC_TUNING=0``, or not on glibc)."""
    if os.environ.get("SNETX_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return {}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    codes = {"M_MMAP_THRESHOLD": M_MMAP_THRESHOLD, "M_TRIM_THRESHOLD": M_TRIM_THRESHOLD}
    return {name: value for name, value in SETTINGS.items() if mallopt(codes[name], value) == 1}
