"""Large outputs of the host kernels from a small pool of buffers owned by snetx.

Why: under glibc's default settings every allocation of 32 MiB or more is a fresh
``mmap``, paid for page by page (a page fault per 4 KiB) on first touch, then returned to
the system when freed; smaller ones come from its heap, whose free top is given back to
the system once it grows past a threshold, so they are fresh pages too, now and then (a
16 MiB output in 2 calls of 5, measured interleaved with another library's LIF). A
neuron's spikes or input gradient at 16x16x65536 float32 is 64 MiB: the faults cost more
than the kernel itself, and vary from run to run. ``snetx-train`` changes the allocator
for its own process, but a library must not change process-wide settings, so the kernels
take their large outputs from here instead.

How: a buffer is a NumPy byte array; a tensor handed out views it (``torch.from_numpy``,
from its first 64-byte boundary, as torch aligns its own: NumPy's large arrays start 16
bytes into a page, and the kernels' streaming stores would then write a partial cache
line at the start of every row), so the array's reference count says whether any tensor
(or view, or saved-for-backward copy) still uses it. A request reuses a free buffer of
the same size (its pages are already mapped) or allocates a new one. Memory cost: at most
:data:`MAX_FREE` free buffers are kept (the oldest beyond that are dropped), and a free
buffer unused for :data:`IDLE_SECONDS` is returned to the system by a daemon thread;
:func:`release` returns them all now. Outputs below :data:`MIN_BYTES` come from the normal
allocator. ``SNETX_BUFFER_POOL=0`` turns the pool off.
"""

import math
import os
import sys
import threading
import time

import numpy as np
import torch

__all__ = ["empty", "release", "MIN_BYTES", "MAX_FREE", "IDLE_SECONDS"]

#: outputs of at least this many bytes come from the pool (LIF fwd+bwd at 32x4x32768, 16
#: MiB outputs, interleaved with another library: the kernels take 3.7 ms on outputs from
#: here, 4.3-4.5 ms on outputs from glibc)
MIN_BYTES = 4 << 20
#: free buffers kept (a training step alternates two per layer size: this step's and the
#: one the previous step's graph still holds)
MAX_FREE = 8
#: a free buffer unused this long goes back to the system
IDLE_SECONDS = 2.0
#: handed-out tensors start at a multiple of this many bytes (a cache line)
ALIGN = 64

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
_lock = threading.Lock()
_buffers = []  # [array, last handed out]
_reaper = None


def enabled() -> bool:
    return os.environ.get("SNETX_BUFFER_POOL", "1") != "0"


def _free(array) -> bool:
    # references: _buffers' entry, this frame's argument and getrefcount's own
    return sys.getrefcount(array) <= 3


def empty(shape, dtype) -> torch.Tensor:
    """An uninitialised CPU tensor of ``shape`` and ``dtype`` (float32/float64), from the
    pool when it is large (see the module doc), else from torch."""
    if dtype not in _NUMPY or not enabled():
        return torch.empty(shape, dtype=dtype)
    nbytes = math.prod(shape) * np.dtype(_NUMPY[dtype]).itemsize
    if nbytes < MIN_BYTES:
        return torch.empty(shape, dtype=dtype)
    with _lock:
        chosen = None
        for entry in _buffers:
            if entry[0].nbytes == nbytes + ALIGN and _free(entry[0]):
                chosen = entry
                break
        if chosen is None:
            chosen = [np.empty(nbytes + ALIGN, dtype=np.uint8), 0.0]
            _buffers.append(chosen)
            _trim(keep=chosen)
        chosen[1] = time.monotonic()
        _start_reaper()
        start = -chosen[0].ctypes.data % ALIGN
        data = chosen[0][start : start + nbytes]  # a view: it holds the array
        return torch.from_numpy(data.view(_NUMPY[dtype])).view(shape)


def _trim(keep=None, idle=None):
    """Drop free buffers beyond MAX_FREE (least recently used first), and those unused
    for ``idle`` seconds. Called holding the lock."""
    now = time.monotonic()
    free = [e for e in _buffers if e is not keep and _free(e[0])]
    free.sort(key=lambda e: e[1])
    drop = {id(e) for e in free[: max(0, len(free) - MAX_FREE)]}
    if idle is not None:
        drop |= {id(e) for e in free if now - e[1] >= idle}
    _buffers[:] = [e for e in _buffers if id(e) not in drop]  # by identity: entries hold arrays


def _reap():
    while True:
        time.sleep(IDLE_SECONDS / 2)
        with _lock:
            _trim(idle=IDLE_SECONDS)


def _start_reaper():
    global _reaper
    if _reaper is None:
        _reaper = threading.Thread(target=_reap, name="snetx-buffer-reaper", daemon=True)
        _reaper.start()


def _after_fork_in_child():
    # a forked child has no reaper thread, and the lock may have been held by it at the
    # fork: start over (the child's copies of the buffers are private to it anyway)
    global _lock, _reaper
    _lock, _reaper = threading.Lock(), None
    _buffers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def release():
    """Return every free pooled buffer to the system now (buffers still in use stay)."""
    with _lock:
        _trim(idle=0.0)
