"""The kernels' per-neuron code built by the host C++ compiler, checked against snetx.snn."""

import ctypes
import os
import shutil
import subprocess

import pytest
import torch
from snetx.cuend import _compile
from snetx.snn import functional as F

HERE = os.path.dirname(__file__)
IO = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
SG = ["arctan", "sigmoid", "rectangular", "triangle", "fast_sigmoid", "ste"]


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx:
        pytest.skip("no host C++ compiler")
    out = tmp_path_factory.mktemp("host") / "libharness.so"
    cmd = [
        cxx,
        "-O1",
        "-std=c++17",
        "-shared",
        "-fPIC",
        "-I",
        HERE,
        *(f"-I{d}" for d in _compile.INCLUDE_DIRS),
        os.path.join(HERE, "host_harness.cpp"),
        "-o",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    p, ll, d, i = ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double, ctypes.c_int
    # io, soft, x, h, s, u0, u_last, k, N, T, F, decay, v_th, v_reset
    lib.host_forward.argtypes = [i, i] + [p] * 6 + [ll] * 3 + [d] * 3
    # io, sg, detach, soft, h, gs, gx, g_ulast, u0, k, g_u0, g_k, N, T, F, decay, v_th,
    # v_reset, alpha
    lib.host_backward.argtypes = [i] * 4 + [p] * 8 + [ll] * 3 + [d] * 4
    lib.host_set_launch.argtypes = [i, i]
    return lib


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def host_lif(lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, **state):
    """(spikes, grad_x, h) of the host build (see :func:`host_lif_state`)."""
    s, gx, h, _, _, _ = host_lif_state(lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, **state)
    return s, gx, h


def host_lif_state(
    lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, *, u0=None, kf=None, g_ulast=None
):
    """(spikes, grad_x, h, u_last, grad_u0, per-neuron dL/dk) of the kernels' host build;
    ``v_reset=None`` is the soft reset, ``u0``/``g_ulast`` are ``N x F``, ``kf`` length F."""
    x = x.contiguous()
    n, T = x.shape[:2]
    f = x.numel() // (n * T)
    state = torch.float64 if x.dtype == torch.float64 else torch.float32
    soft = v_reset is None
    vr = 0.0 if soft else v_reset
    h, s, gx = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    u_last = torch.empty((n, f), dtype=state)
    g_u0 = torch.empty((n, f), dtype=state) if u0 is not None else None
    g_k = torch.empty((n, f), dtype=state) if kf is not None else None
    small = [None if t is None else t.to(state).contiguous() for t in (u0, kf, g_ulast)]
    u0c, kfc, gulc = small
    gs = grad.to(x.dtype).contiguous()  # kept alive: its pointer goes to C
    ptrs = (_ptr(x), _ptr(h), _ptr(s), _ptr(u0c), _ptr(u_last), _ptr(kfc))
    assert lib.host_forward(IO[x.dtype], int(soft), *ptrs, n, T, f, 1 / tau, v_th, vr) == 0
    ptrs = (_ptr(h), _ptr(gs), _ptr(gx), _ptr(gulc), _ptr(u0c), _ptr(kfc), _ptr(g_u0), _ptr(g_k))
    status = lib.host_backward(
        IO[x.dtype], SG.index(sg), int(detach), int(soft), *ptrs, n, T, f, 1 / tau, v_th, vr, alpha
    )
    assert status == 0
    return s, gx, h, u_last, g_u0, g_k


def torch_lif(x, grad, tau, v_th, v_reset, sg, alpha, detach):
    x = x.clone().requires_grad_()
    y = F.lif(x, tau, v_th, v_reset, sg, alpha, detach)
    (g,) = torch.autograd.grad(y, x, grad.to(x.dtype))
    return y.detach(), g


def loop_lif(x, grad, tau, v_th, v_reset, sg, alpha, detach):
    """Spikes and input gradient from the plain autograd loop of the LIF equations
    (lif_loop)."""
    x = x.clone().requires_grad_()
    y = F.lif_loop(x, tau, v_th, v_reset, F._sg.get(sg), alpha, detach)
    (g,) = torch.autograd.grad(y, x, grad.to(x.dtype))
    return y.detach(), g


def _data(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 1.6).to(dtype), torch.randn(
        shape, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("sg", SG)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("tau,v_reset", [(2.0, 0.0), (1.0, -0.3), (1.5, 0.25), (4.0, 0.0)])
def test_float64_matches_snn(host_lib, sg, detach, tau, v_reset):
    x, g = _data((3, 6, 5, 7), torch.float64, seed=len(sg) + int(tau * 4))
    s, gx, _ = host_lif(host_lib, x, g, tau, 1.0, v_reset, sg, 2.5, detach)
    s_ref, gx_ref = torch_lif(x, g, tau, 1.0, v_reset, sg, 2.5, detach)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("T", [1, 7, 8, 9, 17, 24])
@pytest.mark.parametrize("sg", SG)
@pytest.mark.parametrize("detach", [False, True])
def test_time_chunks_match_autograd_loop(host_lib, T, sg, detach):
    # the kernels load SNETX_CHUNK (8) steps at a time: T below, at and past a chunk edge,
    # checked against the plain autograd loop of the LIF equations (snetx.snn's lif_loop)
    x, g = _data((2, T, 3, 5), torch.float64, seed=T)
    s, gx, _ = host_lif(host_lib, x, g, 1.5, 1.0, 0.3, sg, 3.0, detach)
    s_ref, gx_ref = loop_lif(x, g, 1.5, 1.0, 0.3, sg, 3.0, detach)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sg", SG)
@pytest.mark.parametrize("detach", [False, True])
def test_float32_matches_snn(host_lib, sg, detach):
    x, g = _data((4, 8, 300), torch.float32, seed=7)
    s, gx, _ = host_lif(host_lib, x, g, 2.0, 1.0, -0.2, sg, 4.0, detach)
    s_ref, gx_ref = torch_lif(x, g, 2.0, 1.0, -0.2, sg, 4.0, detach)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("sg", ["arctan", "triangle"])
def test_16bit_io_rounding(host_lib, dtype, sg):
    x, g = _data((4, 8, 256), dtype, seed=11)
    s, gx, h = host_lif(host_lib, x, g, 2.0, 1.0, 0.0, sg, 2.0, False)
    s_ref, gx_ref = torch_lif(x, g, 2.0, 1.0, 0.0, sg, 2.0, False)
    assert s.dtype == dtype and torch.equal(s, s_ref)  # fp32 state: identical spikes
    # stored h rounds to the I/O type but stays on the side of the threshold that fired
    assert torch.equal((h.float() >= 1.0).to(dtype), s)
    err = (gx.double() - gx_ref.double()).abs().max() / gx_ref.double().abs().max()
    assert err < 3e-2, float(err)


def test_nudged_h_keeps_threshold_side(host_lib):
    # x = [3/128, 1 - 2^-7] (exact in bf16), tau = 2: h1 = 3/256 + 0.9921875 = 1.00390625,
    # which fires at v_th = 1.002 but rounds (to nearest even) to 1.0 in bf16, below v_th.
    x = torch.tensor([[[0.0234375], [0.9921875]]], dtype=torch.bfloat16)
    s, _, h = host_lif(host_lib, x, torch.ones(1, 2, 1), 2.0, 1.002, 0.0, "arctan", 2.0, False)
    assert s.flatten().tolist() == [0.0, 1.0]
    assert torch.tensor(1.00390625).to(torch.bfloat16).item() == 1.0  # plain rounding is wrong
    assert h[0, 1, 0].item() == 1.0078125  # stored one ulp up: still >= v_th


@pytest.mark.parametrize("grid,block", [(1, 1), (3, 4), (2, 32), (40, 8)])
def test_grid_stride_kernels_cover_every_neuron_once(host_lib, grid, block):
    # The __global__ kernels themselves, run thread by thread on the host: fewer threads
    # than neurons (the grid-stride loop must reach the tail) and more (the extra threads
    # must write nothing; the canaries after each output stay untouched).
    x, g = _data((2, 9, 37), torch.float64, seed=grid)  # 74 neurons
    n = x.numel()
    bufs = {k: torch.full((n + 16,), -7.0, dtype=torch.float64) for k in ("h", "s", "gx")}
    h, s, gx = (bufs[k][:n].view_as(x) for k in ("h", "s", "gx"))
    host_lib.host_set_launch(grid, block)
    try:
        fwd = (_ptr(x), _ptr(h), _ptr(s), None, None, None, 2, 9, 37, 0.5, 1.0, 0.1)
        assert host_lib.host_forward(1, 0, *fwd) == 0
        args = (_ptr(h), _ptr(g), _ptr(gx), *[None] * 5, 2, 9, 37, 0.5, 1.0, 0.1, 3.0)
        assert host_lib.host_backward(1, SG.index("triangle"), 0, 0, *args) == 0
    finally:
        host_lib.host_set_launch(0, 1)
    s_ref, gx_ref = loop_lif(x, g, 2.0, 1.0, 0.1, "triangle", 3.0, False)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    for k in bufs:
        assert (bufs[k][n:] == -7.0).all(), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_without_h_writes_spikes_only(host_lib, dtype):
    # h = nullptr is the evaluation launch (no graph recorded): same spikes, h untouched
    x, _ = _data((3, 10, 41), dtype, seed=5)
    n, T, f = 3, 10, 41
    s_with, s_without, h = torch.empty_like(x), torch.full_like(x, -3.0), torch.empty_like(x)
    rest = (None, None, None, n, T, f, 0.5, 1, 0)
    assert host_lib.host_forward(IO[dtype], 0, _ptr(x), _ptr(h), _ptr(s_with), *rest) == 0
    assert host_lib.host_forward(IO[dtype], 0, _ptr(x), None, _ptr(s_without), *rest) == 0
    s_ref = F.lif_loop(x.double(), 2.0, 1.0, 0.0, F._sg.get("arctan"), 4.0, False)
    assert torch.equal(s_without, s_with) and torch.equal(s_without.double(), s_ref)
