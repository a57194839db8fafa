"""The host C++ kernel's on-disk cache: what it trusts, how it fails.

Each case runs in a fresh Python process with its own cache folder, so a crash (a
truncated library used to end the process with SIGBUS inside dlopen) fails the test
instead of the test run.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

if shutil.which(os.environ.get("CXX") or "g++") is None:
    pytest.skip("no host C++ compiler", allow_module_level=True)

# Loads the kernel in the given mode; prints whether the host kernel is used, the
# warnings raised (one line each) and whether a LIF forward is right either way.
PROBE = textwrap.dedent(
    """
    import sys, warnings
    import torch
    from snetx.snn import _host_kernel, neuron
    _host_kernel.set_mode(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = torch.tensor([[[0.6], [0.6], [0.6], [1.2]]])
        ok = [neuron.LIF()(x).flatten().tolist() for _ in range(3)] == [[0.0, 0.0, 1.0, 1.0]] * 3
        used = _host_kernel.available()
    for w in caught:
        print("WARNING", str(w.message).replace("\\n", " "))
    print("RESULT", used, ok)
    """
)


def probe(cache, mode="auto", **env):
    full = dict(os.environ, SNETX_CACHE_DIR=str(cache), **env)
    full.pop("SNETX_CPU_KERNEL", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=full, timeout=300
    )
    warnings = [line[8:] for line in proc.stdout.splitlines() if line.startswith("WARNING ")]
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return proc, warnings, (result[0] if result else None)


@pytest.fixture(scope="module", autouse=True)
def quick_compiler(tmp_path_factory):
    """Every build here (unless a test names its own CXX) with the host compiler at -O0,
    appended so that it wins over the kernel's -O3: about a fifth of the build time.
    These tests are about the cache and the build's failures, not the kernel's speed (the
    PROBE still checks the LIF's output)."""
    real = shutil.which(os.environ.get("CXX") or "g++")
    cxx = tmp_path_factory.mktemp("quick") / "cxx"
    cxx.write_text(f'#!/bin/sh\nexec {real} "$@" -O0\n')
    cxx.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CXX", str(cxx))
        yield cxx


def library(cache):
    (lib,) = Path(cache).glob("cpu/*/libsnetx_lif-*.so")
    return lib


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """One fresh cache built by a real first use."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    proc, warnings, result = probe(cache)
    assert result == "RESULT True True", proc.stderr
    return cache


@pytest.fixture
def built(built_once, tmp_path):
    """A private copy of that cache (modes kept) for a test to damage."""
    cache = tmp_path / "cache"
    shutil.copytree(built_once, cache, symlinks=True)
    return cache


def test_fresh_cache_is_private_and_records_the_digest(built):
    lib = library(built)
    for folder in (built, built / "cpu", lib.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    import hashlib

    recorded = (lib.parent / "libsnetx_lif.sha256").read_text().strip()
    assert recorded == hashlib.sha256(lib.read_bytes()).hexdigest()
    assert lib.name == f"libsnetx_lif-{recorded[:16]}.so"


def test_truncated_library_is_rebuilt_not_loaded(built):
    lib = library(built)
    data = lib.read_bytes()
    lib.write_bytes(data[: len(data) // 3])
    proc, warnings, result = probe(built)
    assert proc.returncode == 0, proc.stderr  # was SIGBUS (-7) inside ctypes.CDLL
    assert result == "RESULT True True" and warnings == []
    assert library(built).read_bytes() == data  # the same build again


def test_library_without_the_symbols_is_rebuilt(built, tmp_path):
    import hashlib

    lib = library(built)
    src = tmp_path / "other.c"
    src.write_text("int something_else(void) { return 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    # even with a matching record (as if this user had built it), the symbols are checked
    digest = hashlib.sha256(lib.read_bytes()).hexdigest()
    lib.rename(lib.with_name(f"libsnetx_lif-{digest[:16]}.so"))
    (lib.parent / "libsnetx_lif.sha256").write_text(digest)
    proc, warnings, result = probe(built)
    assert result == "RESULT True True" and warnings == [], proc.stderr
    assert b"snetx_lif_forward_f32" in library(built).read_bytes()  # rebuilt, old one gone


def test_group_writable_cache_is_refused_with_one_warning(built):
    lib = library(built)
    os.chmod(lib.parent, 0o777)  # anyone could have planted the library
    proc, warnings, result = probe(built)
    assert result == "RESULT False True", proc.stderr  # eager path, still right
    assert len(warnings) == 1, warnings  # once, although LIF ran three times
    assert "writable by group or others" in warnings[0]
    assert "SNETX_CPU_KERNEL" in warnings[0]
    strict, _, _ = probe(built, mode="host")
    assert strict.returncode != 0 and "writable by group or others" in strict.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_cache_owned_by_another_user_is_refused(built):
    os.chown(built, 12345, 12345)
    proc, warnings, result = probe(built)
    assert result == "RESULT False True", proc.stderr
    assert len(warnings) == 1 and "belongs to uid 12345" in warnings[0]


def _counting_compiler(tmp_path):
    """A compiler that logs each build: its one link step (a build compiles several parts
    side by side, then links them)."""
    log = tmp_path / "builds.log"
    cxx = tmp_path / "cxx"
    real = shutil.which(os.environ.get("CXX") or "g++")
    cxx.write_text(
        f'#!/bin/sh\ncase "$1" in -shared) echo build >> {log} ;; esac\nexec {real} "$@"\n'
    )
    cxx.chmod(0o755)
    return cxx, log


def test_two_processes_build_once(tmp_path):
    cxx, log = _counting_compiler(tmp_path)
    env = dict(os.environ, SNETX_CACHE_DIR=str(tmp_path / "cache"), CXX=str(cxx))
    env.pop("SNETX_CPU_KERNEL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROBE, "host"], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all("RESULT True True" in out for out in outs), outs
    assert log.read_text().split() == ["build"]


def test_hanging_compiler_times_out_and_falls_back(tmp_path):
    cxx = tmp_path / "cxx"
    # not exec: the sleep is a child, as cc1plus is a child of the g++ driver
    cxx.write_text('#!/bin/sh\ncase "$1" in --version) echo fake;; *) sleep 120;; esac\n')
    cxx.chmod(0o755)
    t0 = time.monotonic()
    proc, warnings, result = probe(tmp_path / "cache", CXX=str(cxx), SNETX_BUILD_TIMEOUT="1")
    assert time.monotonic() - t0 < 60
    assert result == "RESULT False True", proc.stderr
    assert len(warnings) == 1 and "longer than 1 s" in warnings[0]


@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_says_no_space(tiny_disk):
    proc, warnings, result = probe(tiny_disk / "cache")
    assert result == "RESULT False True", proc.stderr
    assert len(warnings) == 1 and "no space left on device" in warnings[0], warnings
    assert not list(tiny_disk.glob("cache/cpu/*/.tmp-*"))  # nothing half-written left


def test_surrogate_ids_match_the_kernel_enum():
    from snetx.snn import surrogate
    from snetx.snn._host_kernel import CSRC

    header = (CSRC / "neurons.cuh").read_text()
    enum = re.search(r"enum SurrogateId \{([^}]*)\}", header).group(1)
    ids = {k.strip().lower(): int(v) for k, v in (e.split("=") for e in enum.split(","))}
    assert ids == dict(surrogate.SURROGATE_IDS)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_foreign_library_in_a_private_cache_is_rebuilt_once(built):
    lib = library(built)
    data = lib.read_bytes()
    os.chown(lib, 12345, 12345)  # planted by someone else, same bytes
    proc, warnings, result = probe(built)
    assert result == "RESULT True True" and warnings == [], proc.stderr
    rebuilt = library(built)
    assert rebuilt.stat().st_uid == os.getuid() and rebuilt.read_bytes() == data


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has stopped running
    except FileNotFoundError:
        return False


def test_kill_9_during_a_build_stops_the_compiler_and_the_next_build_cleans_up(tmp_path):
    pidfile = tmp_path / "compiler.pid"
    cxx = tmp_path / "cxx"
    # the long-running part is a child of the driver, as cc1plus is of g++
    cxx.write_text(
        '#!/bin/sh\ncase "$1" in --version) echo fake;; '
        f"*) sleep 300 & echo $! > {pidfile}; wait;; esac\n"
    )
    cxx.chmod(0o755)
    cache = tmp_path / "cache"
    env = dict(os.environ, SNETX_CACHE_DIR=str(cache), CXX=str(cxx), SNETX_BUILD_TIMEOUT="600")
    env.pop("SNETX_CPU_KERNEL", None)
    proc = subprocess.Popen([sys.executable, "-c", PROBE, "host"], env=env)
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    compiler = int(pidfile.read_text())
    assert list(cache.glob("cpu/*/.tmp-*.so"))  # the build's temporary output
    proc.kill()
    proc.wait()
    while _alive(compiler) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(compiler), "the compiler outlived a kill -9 of the process building"
    # the same cache folder, a real compiler: the temporary file is gone after the build
    folder = next(cache.glob("cpu/*"))
    from snetx.snn import _host_kernel

    _host_kernel._build(folder)
    assert not list(folder.glob(".tmp-*")) and list(folder.glob("libsnetx_lif-*.so"))


def test_a_built_cache_is_reused_without_a_build(built):
    """Another process finds the recorded library and loads it: nothing is rebuilt."""
    lib = library(built)
    before = (lib.stat().st_mtime_ns, sorted(p.name for p in lib.parent.iterdir()))
    proc, warnings, result = probe(built, mode="host")
    assert result == "RESULT True True" and warnings == [], proc.stderr
    after = library(built)
    assert (after.stat().st_mtime_ns, sorted(p.name for p in after.parent.iterdir())) == before
