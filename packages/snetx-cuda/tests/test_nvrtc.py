"""Compile every kernel instantiation with NVRTC (no GPU needed, only libnvrtc)."""

import re

import nvrtc12
import pytest
from snetx.cuend import _compile

ARCHS = [70, 75, 80, 86, 89, 90]


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        return nvrtc, nvrtc.getVersion()
    except Exception as e:  # CuPy missing, or libnvrtc cannot be loaded
        pytest.skip(f"NVRTC cannot be loaded here: {type(e).__name__}: {e}")


# every I/O type on the archs that matter most (A100-class, H100/H200); float32 elsewhere,
# which instantiates the same templates (keeps the CI run short)
FULL = (80, 90)


def _ios(arch):
    return tuple(_compile.IO_TYPES) if arch in FULL else ("float32",)


def _compile_all(arch):
    """PTX and lowered names of every instantiation for compute_<arch>: with the NVRTC
    CuPy loaded, or with CUDA 12's NVRTC (nvrtc12.py) for an arch the former dropped."""
    nvrtc, version = _nvrtc()
    if arch in set(nvrtc.getSupportedArchs()):
        ptx, lowered = _compile.nvrtc_compile(f"compute_{arch}", ios=_ios(arch))
        return ptx.decode() if isinstance(ptx, bytes) else ptx, lowered
    lib = nvrtc12.library()
    if lib is None or arch not in nvrtc12.supported_archs(lib):
        pytest.skip(
            f"NVRTC {version} does not target compute_{arch}, and CUDA 12's NVRTC "
            "(pip install nvidia-cuda-nvrtc-cu12) is not installed"
        )
    exprs = [
        e
        for io in _ios(arch)
        for n in _compile.native_neurons()
        for e in _compile.name_expressions(io, n)
    ]
    options = [f"--gpu-architecture=compute_{arch}", *_compile.OPTIONS]
    return nvrtc12.compile_ptx(lib, _compile.source(), _compile.KERNEL_FILE, exprs, options)


# the oldest and the newest architecture in the fast suite, those between under the slow
# marker (up to 13 s each on 2 cores)
@pytest.mark.parametrize(
    "arch",
    [ARCHS[0], *(pytest.param(a, marks=pytest.mark.slow) for a in ARCHS[1:-1]), ARCHS[-1]],
)
def test_every_instantiation_compiles(arch):
    ptx, lowered = _compile_all(arch)
    # 4 I/O types x 3 neurons x 2 resets (hard, soft) x (forward + 6 surrogates x detach)
    assert len(lowered) == len(_ios(arch)) * 3 * 2 * (1 + 2 * 6)
    assert f".target sm_{arch}" in ptx
    entries = set(re.findall(r"\.entry\s+(\S+?)\s*\(", ptx))
    for expr, name in lowered.items():
        assert name in entries, expr
    # 64-bit indexing: the element count parameter is a 64-bit integer
    assert ".param .u64" in ptx and ".param .f32" in ptx
    assert ".param .f64" in ptx or arch not in FULL  # the float64 instantiations


def test_supported_range_is_covered():
    nvrtc, _ = _nvrtc()
    assert {75, 80, 86, 89, 90} <= set(nvrtc.getSupportedArchs())


def test_source_inlines_shared_header_and_is_not_a_python_string():
    src = _compile.source()
    assert "struct CubaLif" in src and "grad_step" in src and '#include "' not in src
    assert (_compile.CSRC / "cuda_driver.cu").is_file()
    assert (_compile.CORE_CSRC / "neurons.cuh").is_file()


def test_cubin_for_a_real_arch():
    nvrtc, _ = _nvrtc()
    if 80 not in nvrtc.getSupportedArchs():
        pytest.skip("sm_80 not supported by this NVRTC")
    cubin, _ = _compile.nvrtc_compile("sm_80", ios=("float32",), cubin=True)
    assert cubin[:4] == b"\x7fELF"


def _entry_body(ptx, lowered_name):
    start = ptx.index(f".entry {lowered_name}(")
    return ptx[start : ptx.index("\n}", start)]


@pytest.mark.parametrize("io", list(_compile.IO_TYPES))
def test_loads_are_issued_a_chunk_at_a_time(io):
    # Memory-level parallelism: each thread issues a chunk of 8 independent loads (forward:
    # x; backward: x and grad_s) before its first store, instead of one load per step.
    # Around them it may load its start state and decay (u0 and k, or g_ulast and k) and,
    # in the backward, the chunk's checkpoint.
    _nvrtc()
    names = [_compile.forward_name(io), _compile.backward_name(io, "arctan", False)]
    ptx, lowered = _compile.nvrtc_compile("compute_80", ios=(io,))
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    for name, loads in zip(names, (8, 16)):
        ops = re.findall(r"\b(ld|st)\.global", _entry_body(ptx, lowered[name]))
        first_store = ops.index("st")
        assert loads <= first_store <= loads + 3, (name, ops[: first_store + 1])


def test_forward_charge_is_not_contracted_to_fma():
    # u * decay + x rounds twice, as in snetx-core's CPU kernel (-ffp-contract=off), so the
    # CPU and GPU kernels fire on exactly the same inputs
    _nvrtc()
    ptx, lowered = _compile.nvrtc_compile("compute_80", ios=("float32", "float64"))
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    for io in ("float32", "float64"):
        body = _entry_body(ptx, lowered[_compile.forward_name(io)])
        assert "mul.rn" in body and "fma" not in body, io


@pytest.mark.parametrize("io", list(_compile.IO_TYPES))
def test_cupy_compile_path_accepts_source_and_options(monkeypatch, io):
    # RawModule compiles through cupy.cuda.compiler, which adds its own NVRTC options
    # (-ftz=true, --device-as-default-execution-space, --pch, -arch=sm_XX). Run that path
    # for sm_90 up to the cubin and the name mapping; only CuPy's arch lookup, which asks
    # the current device, is replaced.
    nvrtc, _ = _nvrtc()
    if 90 not in nvrtc.getSupportedArchs():
        pytest.skip("NVRTC here does not target sm_90")
    compiler = pytest.importorskip("cupy.cuda.compiler")
    if not hasattr(compiler, "_get_arch_for_options_for_nvrtc"):
        pytest.skip("this CuPy compiles differently (no _get_arch_for_options_for_nvrtc)")
    monkeypatch.setattr(
        compiler, "_get_arch_for_options_for_nvrtc", lambda arch: (f"-arch=sm_{arch}", "cubin")
    )
    names = _compile.name_expressions(io)
    cubin, mapping = compiler.compile_using_nvrtc(
        _compile.source(), _compile.OPTIONS + ("-ftz=true",), arch=90,
        name_expressions=names, cache_in_memory=True,
    )  # fmt: skip
    assert cubin[:4] == b"\x7fELF" and set(mapping) == set(names)
    assert all(m.startswith("_ZN5snetx") for m in mapping.values())
