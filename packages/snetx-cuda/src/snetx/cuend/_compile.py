"""Kernel source, instantiation names and compilation (CuPy/NVRTC) for snetx.cuend: the
CUDA driver (``csrc/cuda_driver.cu``) instantiated for each neuron of the family.

Nothing here runs at import: kernels are compiled on first use per device and dtype by
CuPy's RawModule, which caches the binary on disk (``~/.cupy/kernel_cache`` or
``$CUPY_CACHE_DIR``). The source handed to NVRTC has the local headers expanded, so the
cache key covers snetx-core's ``neurons.cuh`` too. Each (device, I/O type, neuron) is one
module, compiled on its first launch.
"""

import re
import threading
from pathlib import Path

import snetx.snn
from snetx.snn.family import NEURONS
from snetx.snn.surrogate import REGISTERED_SG_FUNCLIST, SURROGATE_IDS

CSRC = Path(__file__).with_name("csrc")
CORE_CSRC = Path(snetx.snn.include_dir())  # snetx-core's public header folder
INCLUDE_DIRS = (CSRC, CORE_CSRC)
KERNEL_FILE = "cuda_driver.cu"
# No FMA contraction: the charge u * decay + x rounds twice, exactly as snetx-core's CPU
# kernel (built with -ffp-contract=off) computes it, so both give the same spikes. (CuPy
# appends -ftz=true, which wins over an earlier -ftz=false: subnormals flush to zero.)
OPTIONS = ("-std=c++14", "--fmad=false")
# C++ names of the I/O types, by torch dtype name
IO_TYPES = {
    "float32": "float",
    "float64": "double",
    "float16": "snetx::f16",
    "bfloat16": "snetx::bf16",
}


#: Steps per chunk of the kernels (SNETX_CHUNK in cuda_driver.cu, read from there): the
#: forward keeps the state before each chunk, N x ceil(T / CHUNK) x STATES x F values, from
#: which the backward recomputes the steps.
CHUNK = int(re.search(r"#define SNETX_CHUNK (\d+)", (CSRC / KERNEL_FILE).read_text()).group(1))


def _expand(path: Path, seen: set) -> str:
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
        if m:
            for folder in INCLUDE_DIRS:
                inc = folder / m.group(1)
                if inc.is_file():
                    if inc not in seen:
                        seen.add(inc)
                        out.append(_expand(inc, seen))
                    break
            else:
                raise FileNotFoundError(f"{m.group(1)} (included by {path.name}) not found")
        elif not line.strip().startswith("#pragma once"):
            out.append(line)
    return "\n".join(out)


def source() -> str:
    """The kernel translation unit with snetx's own headers inlined."""
    return _expand(CSRC / KERNEL_FILE, set())


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _native(neuron: str) -> str:
    native = NEURONS[neuron].native
    if native is None:
        raise ValueError(f"neuron {neuron!r} has no native struct: it runs on torch only")
    return "snetx::" + native


def forward_name(io: str, soft: bool = False, neuron: str = "lif") -> str:
    return f"snetx::forward<{_native(neuron)}, {IO_TYPES[io]}, {_b(soft)}>"


def backward_name(io: str, sg: str, detach: bool, soft: bool = False, neuron: str = "lif") -> str:
    sg_id = SURROGATE_IDS[sg]
    return (
        f"snetx::backward<{_native(neuron)}, {IO_TYPES[io]}, {sg_id}, {_b(detach)}, {_b(soft)}>"
    )


def native_neurons():
    """The neurons the CUDA driver instantiates: every one with a native struct."""
    return [name for name, d in NEURONS.items() if d.native is not None]


def name_expressions(io: str, neuron: str = "lif"):
    """Every kernel instantiation of one I/O type and neuron: 2 forwards (hard, soft
    reset) and 2 x 2 x 6 backwards (reset x detach x surrogate)."""
    names = [forward_name(io, soft, neuron) for soft in (False, True)]
    names += [
        backward_name(io, sg, d, soft, neuron)
        for soft in (False, True)
        for sg in REGISTERED_SG_FUNCLIST
        for d in (False, True)
    ]
    return names


def nvrtc_compile(arch: str, ios=tuple(IO_TYPES), cubin=False, neurons=None):
    """Compile every instantiation for ``arch`` (e.g. "compute_80") with NVRTC directly,
    for the I/O types ``ios`` and the ``neurons`` (default: all).

    Needs only the NVRTC library, no GPU. Returns (ptx_or_cubin bytes, {expr: lowered name}).
    """
    from cupy.cuda import nvrtc

    src = source()
    neurons = native_neurons() if neurons is None else neurons
    exprs = [e for io in ios for n in neurons for e in name_expressions(io, n)]
    prog = nvrtc.createProgram(src, KERNEL_FILE, [], [])
    try:
        for e in exprs:
            nvrtc.addNameExpression(prog, e)
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", *OPTIONS])
        except nvrtc.NVRTCError as err:
            raise RuntimeError(f"NVRTC failed for {arch}:\n{nvrtc.getProgramLog(prog)}") from err
        binary = nvrtc.getCUBIN(prog) if cubin else nvrtc.getPTX(prog)
        lowered = {e: nvrtc.getLoweredName(prog, e) for e in exprs}
    finally:
        nvrtc.destroyProgram(prog)
    return binary, lowered


_modules = {}
_kernels = {}
_lock = threading.Lock()


def get_kernel(io: str, name: str, device_index: int, neuron: str = "lif"):
    """The compiled kernel ``name`` of ``neuron`` for I/O dtype ``io`` on a device. The
    module is compiled (or read from CuPy's disk cache) once per device, dtype and neuron,
    and each kernel
    is looked up once, so a launch makes no driver call besides the launch itself (which
    also keeps launches legal inside CUDA graph capture)."""
    key = (device_index, name)
    kernel = _kernels.get(key)
    if kernel is None:
        import cupy

        with _lock:
            mod = _modules.get((device_index, io, neuron))
            with cupy.cuda.Device(device_index):
                if mod is None:
                    names = name_expressions(io, neuron)
                    mod = cupy.RawModule(code=source(), options=OPTIONS, name_expressions=names)
                    _modules[(device_index, io, neuron)] = mod
                kernel = mod.get_function(name)  # loads the module on this device
            _kernels[key] = kernel
    return kernel
