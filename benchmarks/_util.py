"""Shared helpers for the benchmark scripts: timing, saved-for-backward bytes, bandwidth."""

import statistics
import time

import torch


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


def saved_bytes(forward, x):
    """Bytes of the distinct storages autograd keeps for backward while running forward(x)."""
    seen = {}

    def pack(t):
        if t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(x)
    # the input itself is not an extra cost of the neuron
    seen.pop(x.untyped_storage().data_ptr(), None)
    del out
    return sum(seen.values())


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
