"""A second NVRTC for the compile tests: CUDA 12's libnvrtc (the nvidia-cuda-nvrtc-cu12
wheel) through ctypes, for architectures the NVRTC CuPy loaded has dropped (CUDA 13's
NVRTC no longer targets compute_70). Same calls as cupy.cuda.nvrtc: create, add name
expressions, compile, get PTX and lowered names."""

import ctypes
import importlib.util
from pathlib import Path


def library():
    """The CUDA 12 NVRTC library, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "lib" / "libnvrtc.so.12"
        if path.is_file():
            return ctypes.CDLL(str(path))
    return None


def _check(lib, status, prog=None):
    if status != 0:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        msg = lib.nvrtcGetErrorString(status).decode()
        if prog is not None:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            msg += "\n" + log.value.decode(errors="replace")
        raise RuntimeError(f"NVRTC 12: {msg}")


def version(lib):
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
    return major.value, minor.value


def supported_archs(lib):
    n = ctypes.c_int()
    _check(lib, lib.nvrtcGetNumSupportedArchs(ctypes.byref(n)))
    archs = (ctypes.c_int * n.value)()
    _check(lib, lib.nvrtcGetSupportedArchs(archs))
    return list(archs)


def compile_ptx(lib, src, name, exprs, options):
    """(PTX text, {expression: lowered name})"""
    prog = ctypes.c_void_p()
    _check(
        lib, lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
    )
    try:
        for e in exprs:
            _check(lib, lib.nvrtcAddNameExpression(prog, e.encode()), prog)
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        _check(lib, lib.nvrtcCompileProgram(prog, len(options), opts), prog)
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetPTXSize(prog, ctypes.byref(size)))
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(prog, ptx))
        lowered = {}
        for e in exprs:
            out = ctypes.c_char_p()
            _check(lib, lib.nvrtcGetLoweredName(prog, e.encode(), ctypes.byref(out)))
            lowered[e] = out.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode(), lowered
