"""The host C++ kernels of the neuron family: ``csrc/host_driver.cpp`` (a template over
the neuron structs of ``neurons.cuh``, which snetx-cuda's driver includes too) built by
the host C++ compiler on first use — one part per neuron and state type, compiled side by
side and linked into one library — cached on disk and loaded with ctypes. ("Host" as in
CUDA's host code: this is ahead-of-time C++, unrelated to ``torch.compile``.)

Mode (``SNETX_CPU_KERNEL`` or :func:`snetx.snn.functional.set_cpu_kernel`):
``auto`` (default: the host kernel when a compiler can build it, else the eager torch
path), ``host`` (raise when it cannot be built; ``compiled`` is accepted as an older name),
``eager`` (never build).
Cache: ``$SNETX_CACHE_DIR`` or ``~/.cache/snetx``; compiler: ``$CXX`` or ``g++``; a build
is stopped after ``$SNETX_BUILD_TIMEOUT`` seconds (default 300). What the cache trusts:
folders and files owned by this user and writable by nobody else, and a library whose
SHA-256 matches the one recorded when it was built; anything else is rebuilt once (under
a file lock, so concurrent processes build once), then the eager path is used, with one
warning naming the reason.
"""

import ctypes
import errno
import hashlib
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("neurons.cuh", "host_driver.cpp")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC", "-std=c++14"]
MODES = ("auto", "host", "eager")
ALIASES = {"compiled": "host"}  # the name used before 0.3

_lock = threading.Lock()
_state = {"lib": None, "error": None, "build_seconds": None, "mode": None, "warned": False}


class KernelUnavailable(RuntimeError):
    pass


def _canonical(m, where):
    m = ALIASES.get(m, m)
    if m not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(MODES)}, got {m!r}")
    return m


def mode() -> str:
    return _canonical(
        _state["mode"] or os.environ.get("SNETX_CPU_KERNEL", "auto"), "SNETX_CPU_KERNEL"
    )


def set_mode(m: str) -> None:
    _state["mode"] = _canonical(m, "the CPU kernel mode")


def cache_dir() -> Path:
    return Path(os.environ.get("SNETX_CACHE_DIR") or Path.home() / ".cache" / "snetx")


def build_timeout() -> float:
    """Seconds a build may take (``SNETX_BUILD_TIMEOUT``, default 300)."""
    raw = os.environ.get("SNETX_BUILD_TIMEOUT", "300")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise KernelUnavailable(f"SNETX_BUILD_TIMEOUT must be a positive number, got {raw!r}")
    return value


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


def library_dir() -> Path:
    """The cache folder of the library for these sources, compiler, flags and CPU."""
    cxx = _compiler()
    try:
        _, version, _ = _run_with_timeout([cxx, "--version"], min(60, build_timeout()))
    except subprocess.TimeoutExpired:
        raise KernelUnavailable(f"the C++ compiler {cxx!r} did not answer --version") from None
    except OSError as e:
        raise KernelUnavailable(f"cannot run the C++ compiler {cxx!r}: {e}") from e
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((CSRC / name).read_bytes())
    for part in (cxx, version, " ".join(FLAGS), platform.machine(), _cpu_model()):
        h.update(part.encode())
    return cache_dir() / "cpu" / h.hexdigest()[:20]


# ---- what the cache trusts -------------------------------------------------------------
# A library in the cache is loaded into this process, so the cache must be as private as
# the code: every folder from the cache root down, and the files, must belong to this user
# and be writable by nobody else (as OpenSSH requires of ~/.ssh), and the library's bytes
# must match the SHA-256 recorded when this user built it.


def untrusted(st, path) -> str:
    """Why the file or folder ``path`` (its ``lstat`` ``st``) is not private to this user,
    or "" when it is: a symbolic link, another owner, writable by group or others. The
    frame cache of snetx.dataset applies the same rules."""
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{path} belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


def _check_private(path: Path) -> None:
    why = untrusted(path.lstat(), path)
    if why:
        hint = " (chmod go-w, or set SNETX_CACHE_DIR)" if "writable" in why else ""
        raise KernelUnavailable(f"kernel cache: {why}; not trusted{hint}")


def _private_dirs(folder: Path) -> None:
    """Create the folders from the cache root to ``folder`` (mode 0700) and check each."""
    root = cache_dir()
    rel = folder.relative_to(root).parts
    for part in [root, *(root.joinpath(*rel[: i + 1]) for i in range(len(rel)))]:
        try:
            part.mkdir(mode=0o700)
        except FileExistsError:
            pass
        _check_private(part)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The record names the library by its digest, so that a rebuilt library has a new path:
# dlopen returns the handle it already has for a path it has loaded once.
RECORD = "libsnetx_lif.sha256"


def _library_file(folder: Path, digest: str) -> Path:
    return folder / f"libsnetx_lif-{digest[:16]}.so"


def _trusted_file(path: Path) -> bool:
    """Whether ``path`` is a private regular file; a foreign one (another owner, writable
    by others, a link) is removed -- the folder is private, so this user may -- and the
    library is then rebuilt, not refused."""
    if not (path.is_file() or path.is_symlink()):
        return False
    try:
        _check_private(path)
    except KernelUnavailable:
        path.unlink(missing_ok=True)
        return False
    return path.is_file()


def verified_library(folder: Path):
    """The recorded library in ``folder`` when it is private and matches its digest."""
    record = folder / RECORD
    if not _trusted_file(record):
        return None
    digest = record.read_text().strip()
    if not re.fullmatch("[0-9a-f]{64}", digest):
        return None
    lib = _library_file(folder, digest)
    if not _trusted_file(lib):
        return None
    return lib if _digest(lib) == digest else None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _no_space(e: BaseException) -> bool:
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or (
        "No space left on device" in str(e)
    )


def _run_with_timeout(cmd, timeout):
    """(exit code, stdout, stderr) of a quick probe (``--version``); on timeout the
    compiler's whole process group is killed (a compiler driver's children would otherwise
    keep running and hold the pipes open). Builds run through :func:`_run_all`."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout, or Ctrl-C while waiting: stop the whole group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    return proc.returncode, out, err


# The compiler runs under this small watchdog, in a process group of its own. The
# watchdog asks Linux for SIGTERM when its parent dies (kill -9 during a build) and then
# kills the whole group (the g++ driver and its cc1plus/as children), so no compiler runs
# on as an orphan; a timeout kills the same group from here.
_WATCHDOG = """
import ctypes, os, signal, subprocess, sys
def stop(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, stop)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    stop()
try:
    sys.exit(subprocess.call(sys.argv[2:]))
except OSError as e:
    sys.stderr.write(f"{e}\\n")
    sys.exit(127)
"""


def _clean_orphans(folder: Path) -> None:
    """Remove temporary files of a build that was killed (called holding the build lock,
    so no other build is writing them)."""
    for tmp in folder.glob(".tmp-*"):
        tmp.unlink(missing_ok=True)


def _parts(cxx: str, folder: Path):
    """(compile commands, object files): one translation unit per neuron and state type,
    so that the compiler runs them side by side (one unit holding every instantiation
    took 17 s on 2 cores; each part takes a few)."""
    from .family import NEURONS

    compile_flags = [f for f in FLAGS if f != "-shared"]
    commands, objects = [], []
    for desc in NEURONS.values():
        if desc.native is None:
            continue
        for real, suffix in (("float", "f32"), ("double", "f64")):
            fd, obj = tempfile.mkstemp(suffix=".o", dir=folder, prefix=".tmp-")
            os.close(fd)
            objects.append(obj)
            defines = [f"-DSNETX_PART_NAME={desc.name}",
                       f"-DSNETX_PART_NEURON=::snetx::{desc.native}",
                       f"-DSNETX_PART_TYPE={real}", f"-DSNETX_PART_SUFFIX={suffix}",
                       f"-DSNETX_PART_SHAPE={int(real == 'float')}"]  # fmt: skip
            commands.append([cxx, *compile_flags, *defines, "-I", str(CSRC),
                             "-c", str(CSRC / "host_driver.cpp"), "-o", obj])  # fmt: skip
    return commands, objects


def _run_all(commands, timeout):
    """Run the commands, at most one per CPU at a time, each under :data:`_WATCHDOG` in
    a process group of its own; returns ``(command, stderr)`` of the first that fails,
    or None. A timeout (all together) or Ctrl-C stops every group still running."""
    deadline = time.monotonic() + timeout
    pending, running = list(commands), []
    width = max(1, os.cpu_count() or 1)

    def stop_all():
        for _, proc, err in running:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            err.close()
        running.clear()

    try:
        while pending or running:
            while pending and len(running) < width:
                cmd = pending.pop(0)
                err = tempfile.TemporaryFile(mode="w+")  # a pipe could fill and block
                proc = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG, str(os.getpid()), *cmd],
                    stdout=subprocess.DEVNULL, stderr=err, text=True, start_new_session=True,
                )  # fmt: skip
                running.append((cmd, proc, err))
            cmd, proc, err = running[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(cmd, timeout)
            proc.wait(timeout=left)
            running.pop(0)
            err.seek(0)
            stderr = err.read()
            err.close()
            if proc.returncode != 0:
                stop_all()
                return cmd, stderr
    except BaseException:
        stop_all()
        raise
    return None


def _build(folder: Path) -> None:
    """Compile the parts side by side, link them into a temporary file, move it to its
    digest-named path, then record it."""
    _clean_orphans(folder)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder, prefix=".tmp-")
    os.close(fd)
    cxx = _compiler()
    commands, objects = _parts(cxx, folder)
    link = [cxx, "-shared", "-fopenmp", *objects, "-o", tmp]
    timeout = build_timeout()
    deadline = time.monotonic() + timeout
    try:
        failed = _run_all(commands, timeout)  # then the link, in what is left of the timeout
        failed = failed or _run_all([link], max(deadline - time.monotonic(), 1e-3))
        if failed is not None:
            cmd, stderr = failed
            if _no_space(RuntimeError(stderr)):
                raise KernelUnavailable(f"no space left on device in {folder}")
            raise KernelUnavailable(
                f"building the CPU neuron kernels failed:\n{' '.join(cmd)}\n{stderr}"
            )
        digest = _digest(Path(tmp))
        lib = _library_file(folder, digest)
        os.replace(tmp, lib)  # atomic: other processes never load a half-written file
        _write_atomic(folder / RECORD, digest.encode())
        for old in folder.glob("libsnetx_lif-*.so"):
            if old != lib:
                old.unlink(missing_ok=True)
    except subprocess.TimeoutExpired:
        raise KernelUnavailable(
            f"building the CPU neuron kernels took longer than {timeout:g} s "
            "(SNETX_BUILD_TIMEOUT); the compiler was stopped"
        ) from None
    except OSError as e:
        if _no_space(e):
            raise KernelUnavailable(f"no space left on device in {folder}") from None
        raise
    finally:
        for path in (tmp, *objects):
            Path(path).unlink(missing_ok=True)


class _BuildLock:
    """An exclusive flock on the library's folder: one process builds, the others wait."""

    def __init__(self, folder: Path):
        self.path = folder / ".build.lock"

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _open(path: Path):
    lib = ctypes.CDLL(str(path))
    try:
        _declare(lib)
    except AttributeError as e:
        raise KernelUnavailable(f"{path} lacks the kernel's symbols ({e})") from None
    return lib


def _load_or_build(folder: Path):
    """Verify, then load; anything wrong is rebuilt once."""
    _private_dirs(folder)
    with _BuildLock(folder):
        reason = None
        lib = verified_library(folder)
        if lib is not None:
            try:
                return _open(lib)
            except (KernelUnavailable, OSError) as e:
                reason = e
        _build(folder)
        lib = verified_library(folder)
        if lib is None:
            raise KernelUnavailable(f"the kernel built in {folder} does not match its record")
        try:
            return _open(lib)
        except (KernelUnavailable, OSError) as e:
            raise KernelUnavailable(
                f"the rebuilt kernel {lib} does not load ({e})"
                + (f"; first attempt: {reason}" if reason else "")
            ) from None


def _declare(lib) -> None:
    """Argument types of every neuron's two functions (one signature for all, see
    host_driver.cpp), and a check that the library's neurons have the shapes their
    descriptions say."""
    from .family import NEURONS

    i64, c_int, p = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    for desc in NEURONS.values():
        if desc.native is None:
            continue
        for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
            fwd = getattr(lib, f"snetx_{desc.name}_forward_{suffix}")
            # x, s, st0, st_last, k, c; N, T, F; soft, threads
            fwd.argtypes = [p] * 6 + [i64] * 3 + [c_int, c_int]
            fwd.restype = None
            bwd = getattr(lib, f"snetx_{desc.name}_backward_{suffix}")
            # x, gs, gx, g_stlast, st0, k, g_st0, g_k, c; N, T, F; alpha; sg, detach, soft,
            # threads
            bwd.argtypes = [p] * 9 + [i64] * 3 + [real] + [c_int] * 4
            bwd.restype = c_int
        states, decays = ctypes.c_int(), ctypes.c_int()
        getattr(lib, f"snetx_{desc.name}_shape")(ctypes.byref(states), ctypes.byref(decays))
        if (states.value, decays.value) != (len(desc.states), len(desc.decays)):
            raise AttributeError(
                f"{desc.name} has {states.value} states and {decays.value} decays in the "
                f"library, {len(desc.states)} and {len(desc.decays)} in its description"
            )


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
                lib = _load_or_build(library_dir())
            except (KernelUnavailable, OSError) as e:
                _state["error"] = str(e)
                raise KernelUnavailable(str(e)) from e
            _state["build_seconds"] = time.perf_counter() - t0
            _state["lib"] = lib
    return _state["lib"]


def available() -> bool:
    """Whether the host kernel should be used now (respects the mode)."""
    m = mode()
    if m == "eager":
        return False
    try:
        load()
        return True
    except KernelUnavailable as e:
        if m == "host":
            raise
        if not _state["warned"]:
            _state["warned"] = True
            warnings.warn(
                f"snetx: the host C++ LIF kernel is unavailable ({e}); using the eager "
                "torch path. Set SNETX_CPU_KERNEL=eager to choose it, or =host to make "
                "this an error",
                RuntimeWarning,
                stacklevel=3,
            )
        return False


def first_call_seconds():
    """Seconds the first load took in this process (build + dlopen), or None."""
    return _state["build_seconds"]
