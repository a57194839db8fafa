"""The kernels' per-neuron code built by the host C++ compiler, checked against snetx.snn."""

import ctypes
import os
import shutil
import subprocess

import pytest
import torch
from snetx.cuend import _compile
from snetx.snn import family  # noqa: F401  (F.family)
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
    # neuron, io, soft, x, ckpt, s, st0, st_last, k, N, T, F, consts
    lib.host_forward.argtypes = [i] * 3 + [p] * 6 + [ll] * 3 + [p]
    # neuron, io, sg, detach, soft, x, ckpt, gs, gx, g_stlast, st0, k, g_st0, g_k, N, T, F,
    # consts, alpha
    lib.host_backward.argtypes = [i] * 5 + [p] * 9 + [ll] * 3 + [p, d]
    lib.host_set_launch.argtypes = [i, i]
    return lib


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def host_lif(lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, **state):
    """(spikes, grad_x, checkpoints) of the host build (see :func:`host_lif_state`)."""
    s, gx, ckpt, _, _, _ = host_lif_state(
        lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, **state
    )
    return s, gx, ckpt


NEURON_IDS = {"lif": 0, "cubalif": 1, "alif": 2}  # their order in SNETX_NEURONS


def _consts(*values):
    c = (ctypes.c_double * 4)(*(list(values) + [0.0] * (4 - len(values))))
    return c


def host_run(lib, neuron, x, grad, consts, k, soft, sg, alpha, detach, st0=None, g_stlast=None):
    """(spikes, grad_x, checkpoints, st_last, grad_st0, per-neuron dL/dk) of the driver's
    host build for the neuron named ``neuron``: ``k`` is DECAYS x F, ``st0``/``g_stlast``
    STATES x N x F, ``consts`` (v_th, v_reset, ...)."""
    x = x.contiguous()
    n, T = x.shape[:2]
    f = x.numel() // (n * T)
    states = {"lif": 1}.get(neuron, 2)
    state = torch.float64 if x.dtype == torch.float64 else torch.float32
    s, gx = torch.empty_like(x), torch.empty_like(x)
    ckpt = torch.empty((n, -(-T // _compile.CHUNK), states, f), dtype=state)
    st_last = torch.empty((states, n, f), dtype=state)
    g_st0 = torch.empty((states, n, f), dtype=state) if st0 is not None else None
    g_k = torch.empty((k.shape[0], n, f), dtype=state)
    small = [None if t is None else t.to(state).contiguous() for t in (st0, k, g_stlast)]
    st0c, kc, gslc = small
    gs = grad.to(x.dtype).contiguous()  # kept alive: its pointer goes to C
    c, nid = _consts(*consts), NEURON_IDS[neuron]
    ptrs = (_ptr(x), _ptr(ckpt), _ptr(s), _ptr(st0c), _ptr(st_last), _ptr(kc))
    assert lib.host_forward(nid, IO[x.dtype], int(soft), *ptrs, n, T, f, c) == 0
    ptrs = (_ptr(x), _ptr(ckpt), _ptr(gs), _ptr(gx), _ptr(gslc), _ptr(st0c), _ptr(kc))
    ptrs += (_ptr(g_st0), _ptr(g_k))
    status = lib.host_backward(
        nid, IO[x.dtype], SG.index(sg), int(detach), int(soft), *ptrs, n, T, f, c, alpha
    )
    assert status == 0
    return s, gx, ckpt, st_last, g_st0, g_k


def host_lif_state(
    lib, x, grad, tau, v_th, v_reset, sg, alpha, detach, *, u0=None, kf=None, g_ulast=None
):
    """(spikes, grad_x, checkpoints, u_last, grad_u0, per-neuron dL/dk) of the LIF's host
    build; ``v_reset=None`` is the soft reset, ``u0``/``g_ulast`` are ``N x F``, ``kf``
    length F (None: ``1 / tau``). The checkpoints (the membrane before every CHUNK steps,
    ``N x chunks x F``) are what the backward recomputes the charges from."""
    n, T = x.shape[:2]
    f = x.numel() // (n * T)
    k = torch.full((f,), 1 / tau, dtype=torch.float64) if kf is None else kf
    soft = v_reset is None
    out = host_run(
        lib, "lif", x, grad, (v_th, 0.0 if soft else v_reset), k.view(1, f), soft, sg, alpha,
        detach, None if u0 is None else u0.unsqueeze(0),
        None if g_ulast is None else g_ulast.unsqueeze(0),
    )  # fmt: skip
    s, gx, ckpt, u_last, g_u0, g_k = out
    g_u0 = None if g_u0 is None else g_u0[0]
    return s, gx, ckpt[:, :, 0], u_last[0], g_u0, (None if kf is None else g_k[0])


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
    s, gx, _ = host_lif(host_lib, x, g, 2.0, 1.0, 0.0, sg, 2.0, False)
    s_ref, gx_ref = torch_lif(x, g, 2.0, 1.0, 0.0, sg, 2.0, False)
    assert s.dtype == dtype and torch.equal(s, s_ref)  # fp32 state: identical spikes
    err = (gx.double() - gx_ref.double()).abs().max() / gx_ref.double().abs().max()
    assert err < 3e-2, float(err)


def test_16bit_backward_sees_the_charge_the_forward_fired_on(host_lib):
    # x = [3/128, 1 - 2^-7] (exact in bf16), tau = 2: h1 = 3/256 + 0.9921875 = 1.00390625
    # fires at v_th = 1.002 but would round to 1.0 in bf16, below v_th. The backward
    # recomputes h in float32 from x, so it takes the fired branch: the gradient of the
    # float32 run of the same input, exactly.
    x = torch.tensor([[[0.0234375], [0.9921875]]], dtype=torch.bfloat16)
    g = torch.ones(1, 2, 1)
    s, gx, _ = host_lif(host_lib, x, g, 2.0, 1.002, 0.0, "arctan", 2.0, False)
    s32, gx32, _ = host_lif(host_lib, x.float(), g, 2.0, 1.002, 0.0, "arctan", 2.0, False)
    assert s.flatten().tolist() == [0.0, 1.0] and torch.equal(s.float(), s32)
    assert torch.equal(gx.float(), gx32.to(torch.bfloat16).float())


@pytest.mark.parametrize("T", [1, 7, 8, 9, 16, 17, 40])
def test_checkpoints_hold_the_membrane_before_each_chunk(host_lib, T):
    # T around multiples of the chunk: the backward restarts every chunk from these
    x, g = _data((2, T, 5), torch.float64, seed=T)
    u0 = torch.rand(2, 5, dtype=torch.float64)
    s, gx, ckpt, _, _, _ = host_lif_state(host_lib, x, g, 2.0, 1.0, 0.0, "arctan", 2.0, False,
                                          u0=u0)  # fmt: skip
    assert ckpt.shape == (2, -(-T // _compile.CHUNK), 5)
    u, want = u0.clone(), []
    for t in range(T):
        if t % _compile.CHUNK == 0:
            want.append(u.clone())
        h = u * 0.5 + x[:, t]
        u = torch.where(h >= 1.0, torch.zeros_like(h), h)
    assert torch.equal(ckpt, torch.stack(want, 1))
    # and the backward restarted from them is the reference loop's (from rest here)
    s, gx, _ = host_lif(host_lib, x, g, 2.0, 1.0, 0.0, "arctan", 2.0, False)
    s_ref, gx_ref = loop_lif(x, g, 2.0, 1.0, 0.0, "arctan", 2.0, False)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("grid,block", [(1, 1), (3, 4), (2, 32), (40, 8)])
def test_grid_stride_kernels_cover_every_neuron_once(host_lib, grid, block):
    # The __global__ kernels themselves, run thread by thread on the host: fewer threads
    # than neurons (the grid-stride loop must reach the tail) and more (the extra threads
    # must write nothing; the canaries after each output stay untouched).
    x, g = _data((2, 9, 37), torch.float64, seed=grid)  # 74 neurons
    n = x.numel()
    nc = 2 * -(-9 // _compile.CHUNK) * 37  # checkpoints: N x ceil(T / CHUNK) x F
    sizes = {"ckpt": nc, "s": n, "gx": n}
    bufs = {k: torch.full((m + 16,), -7.0, dtype=torch.float64) for k, m in sizes.items()}
    ckpt = bufs["ckpt"][:nc]
    s, gx = (bufs[k][:n].view_as(x) for k in ("s", "gx"))
    host_lib.host_set_launch(grid, block)
    try:
        k, c = torch.full((37,), 0.5, dtype=torch.float64), _consts(1.0, 0.1)
        fwd = (_ptr(x), _ptr(ckpt), _ptr(s), None, None, _ptr(k), 2, 9, 37, c)
        assert host_lib.host_forward(0, 1, 0, *fwd) == 0
        args = (_ptr(x), _ptr(ckpt), _ptr(g), _ptr(gx), None, None, _ptr(k), None, None)
        args += (2, 9, 37, c, 3.0)
        assert host_lib.host_backward(0, 1, SG.index("triangle"), 0, 0, *args) == 0
    finally:
        host_lib.host_set_launch(0, 1)
    s_ref, gx_ref = loop_lif(x, g, 2.0, 1.0, 0.1, "triangle", 3.0, False)
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    for k, m in sizes.items():
        assert (bufs[k][m:] == -7.0).all(), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_forward_without_checkpoints_writes_spikes_only(host_lib, dtype):
    # ckpt = nullptr is the evaluation launch (no graph recorded): the same spikes
    x, _ = _data((3, 10, 41), dtype, seed=5)
    n, T, f = 3, 10, 41
    s_with, s_without = torch.empty_like(x), torch.full_like(x, -3.0)
    state = torch.float64 if dtype == torch.float64 else torch.float32
    ckpt = torch.empty((n, -(-T // _compile.CHUNK), f), dtype=state)
    k = torch.full((f,), 0.5, dtype=state)
    rest = (None, None, _ptr(k), n, T, f, _consts(1.0, 0.0))
    assert host_lib.host_forward(0, IO[dtype], 0, _ptr(x), _ptr(ckpt), _ptr(s_with), *rest) == 0
    assert host_lib.host_forward(0, IO[dtype], 0, _ptr(x), None, _ptr(s_without), *rest) == 0
    s_ref = F.lif_loop(x.double(), 2.0, 1.0, 0.0, F._sg.get("arctan"), 4.0, False)
    assert torch.equal(s_without, s_with) and torch.equal(s_without.double(), s_ref)


# ---- state across calls, soft reset, learnable decay (the same per-neuron code) --------

RESET = {"hard": -0.3, "soft": None}


def _reference_state(x, grad, g_last, tau, v_reset, sg, alpha, detach, u0, k):
    """The plain autograd loop (snetx.snn's lif_loop) with state and a per-feature decay:
    spikes, u_last and the gradients of x, u0 and k (per feature)."""
    x = x.clone().requires_grad_()
    u0 = u0.clone().requires_grad_()
    k = k.clone().requires_grad_()
    n, T, f = x.shape
    u, outs = u0, []
    sgf = F._sg.get(sg)
    for t in range(T):
        h = u * k + x[:, t]
        s = sgf.apply(h - 1.0, alpha)
        r = s.detach() if detach else s
        u = h - 1.0 * r if v_reset is None else h * (1 - r) + v_reset * r
        outs.append(s)
    s = torch.stack(outs, 1)
    gx, gu0, gk = torch.autograd.grad((s, u), (x, u0, k), (grad, g_last))
    return s.detach(), u.detach(), gx, gu0, gk


@pytest.mark.parametrize("sg", SG)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", list(RESET))
def test_state_soft_reset_and_decay_match_the_loop_and_chunk(host_lib, sg, detach, reset):
    v_reset = RESET[reset]
    n, T, f = 2, 13, 6
    x, g = _data((n, T, f), torch.float64, seed=len(sg) + 3 * detach)
    gen = torch.Generator().manual_seed(1)
    u0 = torch.rand(n, f, generator=gen, dtype=torch.float64) - 0.2
    k = 0.3 + 0.6 * torch.rand(f, generator=gen, dtype=torch.float64)  # per feature
    g_last = torch.randn(n, f, generator=gen, dtype=torch.float64)
    s_ref, u_ref, gx_ref, gu0_ref, gk_ref = _reference_state(
        x, g, g_last, 2.0, v_reset, sg, 3.0, detach, u0, k
    )
    args = (2.0, 1.0, v_reset, sg, 3.0, detach)
    s, gx, _, u_last, gu0, gk = host_lif_state(host_lib, x, g, *args, u0=u0, kf=k, g_ulast=g_last)
    assert torch.equal(s, s_ref) and s_ref.sum() > 0 and (1 - s_ref).sum() > 0
    close = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(u_last, u_ref, **close)
    torch.testing.assert_close(gx, gx_ref, **close)
    torch.testing.assert_close(gu0, gu0_ref, **close)
    torch.testing.assert_close(gk.sum(0), gk_ref, **close)

    # the same sequence in chunks 0:4, 4:5, 5:13, state handed over both ways
    edges = [(0, 4), (4, 5), (5, 13)]
    states, spikes, u = [], [], u0
    for a, b in edges:  # forward: u_last of a chunk is u0 of the next
        states.append(u)
        out = host_lif_state(host_lib, x[:, a:b], g[:, a:b], *args, u0=u, kf=k, g_ulast=g_last)
        spikes.append(out[0])
        u = out[3]
    g_u, gxs, gk_sum = g_last, [], torch.zeros(f, dtype=torch.float64)
    for (a, b), u_in in reversed(list(zip(edges, states))):  # backward: g_u0 -> g_ulast
        out = host_lif_state(host_lib, x[:, a:b], g[:, a:b], *args, u0=u_in, kf=k, g_ulast=g_u)
        gxs.insert(0, out[1])
        g_u, gk_sum = out[4], gk_sum + out[5].sum(0)
    assert torch.equal(torch.cat(spikes, 1), s_ref)
    torch.testing.assert_close(u, u_ref, **close)
    torch.testing.assert_close(torch.cat(gxs, 1), gx_ref, **close)
    torch.testing.assert_close(g_u, gu0_ref, **close)
    torch.testing.assert_close(gk_sum, gk_ref, **close)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reset", list(RESET))
def test_state_and_decay_in_every_io_type(host_lib, dtype, reset):
    # 16-bit and float32 I/O with float32 state: close to the float64 run
    v_reset = RESET[reset]
    x, g = _data((3, 9, 20), torch.float64, seed=21)
    u0 = torch.rand(3, 20, dtype=torch.float64) * 0.5
    k = torch.full((20,), 0.6, dtype=torch.float64)
    args = (2.0, 1.0, v_reset, "arctan", 2.0, False)
    ref = host_lif_state(host_lib, x, g, *args, u0=u0, kf=k, g_ulast=None)
    out = host_lif_state(host_lib, x.to(dtype), g, *args, u0=u0, kf=k, g_ulast=None)
    assert out[3].dtype == torch.float32  # u_last in the state type
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 6e-2}[dtype]
    agree = (out[0].double() == ref[0]).double().mean()
    assert agree > 0.97  # 16-bit rounding of x may flip a spike at the threshold
    if dtype == torch.float32:
        torch.testing.assert_close(out[1].double(), ref[1], rtol=tol, atol=tol)
        torch.testing.assert_close(out[5].double().sum(0), ref[5].sum(0), rtol=tol, atol=tol)


# ---- the new members: the same driver, their own struct ---------------------------------



@pytest.mark.parametrize("neuron", ["cubalif", "alif"])
@pytest.mark.parametrize("sg", SG)
@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("reset", list(RESET))
@pytest.mark.parametrize("T", [5, 8, 19])
def test_new_members_match_their_plain_step(host_lib, neuron, sg, detach, reset, T):
    """The driver's host build of CubaLif/Alif against the plain autograd loop of the
    neurons' Python step (itself checked against the equations in snetx-core's tests),
    with state in and out, per-feature decays and their gradients, across chunk edges."""
    desc = F.family.get(neuron)
    v_reset = RESET[reset]
    soft = v_reset is None
    consts = (1.0, 0.0 if soft else v_reset) + ((0.6,) if neuron == "alif" else ())
    n, f = 2, 5
    x, g = _data((n, T, f), torch.float64, seed=T + len(sg))
    x = x * 1.3
    gen = torch.Generator().manual_seed(T)
    st0 = torch.rand(2, n, f, generator=gen, dtype=torch.float64) * 0.5
    k = 0.3 + 0.6 * torch.rand(2, f, generator=gen, dtype=torch.float64)
    g_last = torch.randn(2, n, f, generator=gen, dtype=torch.float64)
    s, gx, _, st_last, g_st0, g_k = host_run(
        host_lib, neuron, x, g, consts, k, soft, sg, 2.0, detach, st0, g_last
    )
    xr, st0r, kr = (t.clone().requires_grad_() for t in (x, st0, k))
    s_ref, st_ref = F.family.loop(
        desc, xr, (kr[0], kr[1]), consts, soft, F._sg.get(sg), 2.0, detach,
        desc.state(*st0r.unbind(0)),
    )  # fmt: skip
    assert torch.equal(s, s_ref.detach()) and 0 < s.sum() < s.numel()
    grads = torch.autograd.grad((s_ref, *st_ref), (xr, st0r, kr), (g, *g_last.unbind(0)))
    close = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(st_last, torch.stack(tuple(st_ref)).detach(), **close)
    torch.testing.assert_close(gx, grads[0], **close)
    torch.testing.assert_close(g_st0, grads[1], **close)
    torch.testing.assert_close(g_k.sum(1), grads[2], **close)
