"""snetx-train's allocator settings: what they do to a real process, and how to opt out."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")

# A 256 MiB tensor, freed, then the process's resident memory: glibc returns a fresh
# mmap'ed block to the system at once (the next one is paid for page by page again); with
# the settings the block stays in the heap for the next allocation to reuse.
PROBE = """
import os, sys
import torch
from snetx.train.memory import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tuned" else {}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
x = torch.ones(64 << 20)  # 256 MiB, every page touched
del x
print(len(applied), (rss() - before) >> 20)
"""


def _probe(mode, **env):
    import os

    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
        env={**os.environ, **env},
    )  # fmt: skip
    applied, kept_mib = map(int, out.stdout.split())
    return applied, kept_mib


def test_tuned_process_keeps_freed_large_tensors_for_reuse():
    applied, kept = _probe("tuned")
    assert applied == 2 and kept >= 200  # the 256 MiB stay mapped, ready for reuse
    applied, kept = _probe("default")
    assert applied == 0 and kept < 64  # glibc's default: given back to the system


def test_opt_out_with_the_environment():
    applied, kept = _probe("tuned", SNETX_MALLOC_TUNING="0")
    assert applied == 0 and kept < 64


def test_no_mallopt_means_no_change(monkeypatch):
    import ctypes

    from snetx.train import memory

    def missing(*a, **k):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert memory.tune_allocator() == {}
