"""Shared helpers for the benchmark scripts: timing, saved-for-backward bytes, bandwidth."""

import statistics
import time

import torch
from snetx.snn import memory


def median_time(fn, repeats=7, warmup=2, sync=None):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def saved_bytes(forward, x, exclude=()):
    """Bytes of the distinct storages autograd keeps for backward while running forward(x),
    less the input's (not an extra cost of what runs on it) and those of ``exclude``."""
    kept = memory.saved_storages(lambda: forward(x), (x, *exclude))
    return sum(b for b, _ in kept.values())


def copy_bandwidth(numel=1 << 26, device="cpu", repeats=5):
    """Bytes/s of a large tensor copy (read + write) measured now, on this device."""
    a = torch.empty(numel, dtype=torch.float32, device=device).uniform_()
    b = torch.empty_like(a)
    sync = torch.cuda.synchronize if device != "cpu" else None
    t = median_time(lambda: b.copy_(a), repeats=repeats, warmup=1, sync=sync)
    return 2 * a.numel() * a.element_size() / t


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
