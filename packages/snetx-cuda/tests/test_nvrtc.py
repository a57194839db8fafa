"""Compile every kernel instantiation with NVRTC (no GPU needed, only libnvrtc)."""

import re

import pytest
from snetx.cuend import _compile

ARCHS = [70, 75, 80, 86, 89, 90]


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        return nvrtc, nvrtc.getVersion()
    except Exception as e:  # CuPy missing, or libnvrtc cannot be loaded
        pytest.skip(f"NVRTC cannot be loaded here: {type(e).__name__}: {e}")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_instantiation_compiles(arch):
    nvrtc, version = _nvrtc()
    supported = set(nvrtc.getSupportedArchs())
    if arch not in supported:
        pytest.skip(
            f"NVRTC {version} does not target compute_{arch} (supports {sorted(supported)})"
        )
    ptx, lowered = _compile.nvrtc_compile(f"compute_{arch}")
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert len(lowered) == 4 * (1 + 2 * 6)  # 4 I/O types x (forward + 6 surrogates x detach)
    entries = set(re.findall(r"\.entry\s+(\S+?)\s*\(", ptx))
    for expr, name in lowered.items():
        assert name in entries, expr
    # 64-bit indexing: the element count parameter is a 64-bit integer
    assert ".param .u64" in ptx and ".param .f64" in ptx


def test_supported_range_is_covered():
    nvrtc, _ = _nvrtc()
    assert {75, 80, 86, 89, 90} <= set(nvrtc.getSupportedArchs())


def test_source_inlines_shared_header_and_is_not_a_python_string():
    src = _compile.source()
    assert "lif_grad_step" in src and '#include "' not in src
    assert (_compile.CSRC / "lif_kernels.cu").is_file()
    assert (_compile.CORE_CSRC / "lif_neuron.cuh").is_file()


def test_cubin_for_a_real_arch():
    nvrtc, _ = _nvrtc()
    if 80 not in nvrtc.getSupportedArchs():
        pytest.skip("sm_80 not supported by this NVRTC")
    cubin, _ = _compile.nvrtc_compile("sm_80", ios=("float32",), cubin=True)
    assert cubin[:4] == b"\x7fELF"
