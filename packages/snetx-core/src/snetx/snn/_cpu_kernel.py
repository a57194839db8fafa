"""The compiled CPU LIF: ``csrc/lif_cpu.cpp`` (over the shared ``lif_neuron.cuh``) built by
the host C++ compiler on first use and cached on disk, loaded with ctypes.

Mode (``SNETX_CPU_KERNEL`` or :func:`snetx.snn.functional.set_cpu_kernel`):
``auto`` (default: compiled when a compiler can build it, else the eager torch path),
``compiled`` (raise when it cannot be built), ``eager`` (never compile).
Cache: ``$SNETX_CACHE_DIR`` or ``~/.cache/snetx``; compiler: ``$CXX`` or ``g++``.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("lif_neuron.cuh", "lif_cpu.cpp")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC", "-std=c++14"]
MODES = ("auto", "compiled", "eager")

_lock = threading.Lock()
_state = {"lib": None, "error": None, "build_seconds": None, "mode": None}


class KernelUnavailable(RuntimeError):
    pass


def mode() -> str:
    m = _state["mode"] or os.environ.get("SNETX_CPU_KERNEL", "auto")
    if m not in MODES:
        raise ValueError(f"SNETX_CPU_KERNEL must be one of {MODES}, got {m!r}")
    return m


def set_mode(m: str) -> None:
    if m not in MODES:
        raise ValueError(f"cpu kernel mode must be one of {MODES}, got {m!r}")
    _state["mode"] = m


def cache_dir() -> Path:
    return Path(os.environ.get("SNETX_CACHE_DIR") or Path.home() / ".cache" / "snetx")


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise KernelUnavailable("no C++ compiler found (set CXX or install g++)")
    return cxx


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line
    except OSError:
        pass
    return platform.processor()


def library_path() -> Path:
    cxx = _compiler()
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    except OSError as e:
        raise KernelUnavailable(f"cannot run the C++ compiler {cxx!r}: {e}") from e
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((CSRC / name).read_bytes())
    for part in (cxx, version, " ".join(FLAGS), platform.machine(), _cpu_model()):
        h.update(part.encode())
    return cache_dir() / "cpu" / h.hexdigest()[:20] / "libsnetx_lif.so"


def _build(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [_compiler(), *FLAGS, "-I", str(CSRC), str(CSRC / "lif_cpu.cpp"), "-o", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise KernelUnavailable(
            f"building the CPU LIF kernel failed:\n{' '.join(cmd)}\n{proc.stderr}"
        )
    os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file


def _declare(lib) -> None:
    i64, c_int, p = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fwd = getattr(lib, f"snetx_lif_forward_{suffix}")
        fwd.argtypes = [p, p, p, i64, i64, i64, real, real, real, c_int]
        fwd.restype = None
        bwd = getattr(lib, f"snetx_lif_backward_{suffix}")
        bwd.argtypes = [p, p, p, i64, i64, i64, real, real, real, real, c_int, c_int, c_int]
        bwd.restype = c_int


def load():
    """The loaded library; builds it on first use. Raises KernelUnavailable."""
    if _state["lib"] is not None:
        return _state["lib"]
    if _state["error"] is not None:
        raise KernelUnavailable(_state["error"])
    with _lock:
        if _state["lib"] is None:
            t0 = time.perf_counter()
            try:
                path = library_path()
                if not path.exists():
                    _build(path)
                lib = ctypes.CDLL(str(path))
                _declare(lib)
            except (KernelUnavailable, OSError) as e:
                _state["error"] = str(e)
                raise KernelUnavailable(str(e)) from e
            _state["build_seconds"] = time.perf_counter() - t0
            _state["lib"] = lib
    return _state["lib"]


def available() -> bool:
    """Whether the compiled kernel should be used now (respects the mode)."""
    m = mode()
    if m == "eager":
        return False
    try:
        load()
        return True
    except KernelUnavailable:
        if m == "compiled":
            raise
        return False


def first_call_seconds():
    """Seconds the first load took in this process (build + dlopen), or None."""
    return _state["build_seconds"]
