import itertools

import pytest
import torch
from reference import DERIVATIVES, lif_backward_by_hand, lif_reference
from snetx.snn import family, neuron, surrogate
from snetx.snn._fused import Rule
from snetx.snn.functional import Fused, lif

SHAPES = [(3, 5), (2, 6, 7), (2, 4, 3, 5), (2, 3, 2, 4, 4)]

# every test here runs on both CPU paths: the host C++ kernel and the eager torch ops
pytestmark = pytest.mark.usefixtures("cpu_kernel")


def _inputs(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # inputs around the threshold so neurons both fire and stay silent
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 1.6).to(dtype)
    grad = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return x, grad


def _grads(fn, x, grad):
    x = x.clone().requires_grad_()
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, grad)
    return y.detach(), gx


@pytest.mark.parametrize("name", list(DERIVATIVES))
@pytest.mark.parametrize("detach", [False, True])
def test_matches_reference_loop_every_surrogate(name, detach):
    x, g = _inputs((4, 6, 33))
    args = dict(tau=2.0, v_th=1.0, v_reset=-0.3, alpha=3.0, detach=detach)
    y, gx = _grads(lambda x: lif(x, sg=name, **args), x, g)
    y_ref, gx_ref = _grads(
        lambda x: lif_reference(x, args["tau"], args["v_th"], args["v_reset"], name, 3.0, detach),
        x,
        g,
    )
    assert torch.equal(y, y_ref)
    assert y.sum() > 0 and (1 - y).sum() > 0
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    by_hand = lif_backward_by_hand(x, g, args["tau"], 1.0, -0.3, name, 3.0, detach)
    torch.testing.assert_close(gx, by_hand, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "tau,v_reset,detach,shape",
    list(itertools.product([1.0, 1.5, 2.0, 4.0], [0.0, 0.4, -0.5], [False, True], SHAPES)),
)
def test_tau_reset_shapes(tau, v_reset, detach, shape):
    x, g = _inputs(shape, seed=int(tau * 10) + len(shape))
    mod = neuron.LIF(tau=tau, v_th=1.0, v_reset=v_reset, detach=detach)
    y, gx = _grads(mod, x, g)
    y_ref, gx_ref = _grads(
        lambda x: lif_reference(x, tau, 1.0, v_reset, "arctan", 4.0, detach), x, g
    )
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


def test_v_reset_enters_the_gradient():
    # The (v_reset - h) factor of the LIF backward (docs/specification.md): dropping
    # v_reset changes the gradient.
    x, g = _inputs((2, 8, 50))
    _, g0 = _grads(lambda x: lif(x, v_reset=0.0), x, g)
    _, g1 = _grads(lambda x: lif(x, v_reset=-0.5), x, g)
    _, g1_ref = _grads(lambda x: lif_reference(x, 2.0, 1.0, -0.5, "arctan", 4.0, False), x, g)
    torch.testing.assert_close(g1, g1_ref, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(g0, g1)


def test_threshold_tie_fires():
    x = torch.tensor([[[1.0], [0.5], [0.75]]], dtype=torch.float64)
    # h = 1.0 fires at exactly v_th; then h = 0.5, then 0.25 + 0.75 = 1.0 fires again
    assert lif(x).flatten().tolist() == [1.0, 0.0, 1.0]


def test_float32_matches_float64_reference():
    x, g = _inputs((8, 8, 257), dtype=torch.float32, seed=3)
    y, gx = _grads(neuron.LIF(v_reset=0.2), x, g)
    y_ref, gx_ref = _grads(
        lambda x: lif_reference(x, 2.0, 1.0, 0.2, "arctan", 4.0, False), x.double(), g.double()
    )
    # float32 rounding can flip a spike only at a near-exact tie
    assert (y.double() != y_ref).float().mean() < 1e-3
    same = (y.double() == y_ref).all(dim=1, keepdim=True).expand_as(y)
    torch.testing.assert_close(gx.double()[same], gx_ref[same], rtol=1e-5, atol=1e-6)


def test_bfloat16_under_autocast_keeps_dtype_and_close_to_fp32():
    x, g = _inputs((4, 4, 64), dtype=torch.float32, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = x.clone().requires_grad_()
        y = neuron.LIF()(xb.to(torch.bfloat16))
        assert y.dtype == torch.bfloat16
        y.float().mul(g).sum().backward()
    y32, g32 = _grads(neuron.LIF(), x.to(torch.bfloat16).float(), g)
    assert torch.equal(y.float(), y32)
    assert xb.grad.dtype == torch.float32
    torch.testing.assert_close(xb.grad, g32, rtol=2e-2, atol=2e-2)


def test_non_contiguous_and_channels_last():
    x, g = _inputs((3, 4, 6, 5, 5))
    xt = x.transpose(3, 4)  # non-contiguous view
    y, gx = _grads(neuron.LIF(), xt, g)
    y_ref, gx_ref = _grads(
        lambda x: lif_reference(x, 2.0, 1.0, 0.0, "arctan", 4.0, False), xt.contiguous(), g
    )
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    frames = x[:, 0].contiguous(memory_format=torch.channels_last)
    cl = torch.stack([frames] * 4, 1)
    assert torch.equal(
        neuron.LIF()(cl), lif_reference(cl.contiguous(), 2.0, 1.0, 0.0, "arctan", 4.0, False)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau,v_reset", [(2.0, 0.0), (1.5, -0.4), (1.0, 0.3)])
def test_forward_without_graph_matches_reference(monkeypatch, dtype, tau, v_reset):
    # evaluation: no graph is recorded, so the spikes-only forward runs (the host kernel
    # then keeps nothing); the autograd Function must not be entered at all
    x, _ = _inputs((4, 9, 3, 11), dtype, seed=int(tau * 10))
    y_ref = lif_reference(x.double(), tau, 1.0, v_reset, "arctan", 4.0, False).to(dtype)
    y_graph = lif(x.clone().requires_grad_(), tau=tau, v_reset=v_reset)

    def no_function(*args):
        raise AssertionError("Fused entered without a graph to record")

    monkeypatch.setattr(Fused, "apply", no_function)
    with torch.no_grad():
        y_nograd = lif(x.clone().requires_grad_(), tau=tau, v_reset=v_reset)
    with torch.inference_mode():
        y_inference = neuron.LIF(tau=tau, v_reset=v_reset)(x)
    y_plain = lif(x, tau=tau, v_reset=v_reset)  # input does not require grad
    for y in (y_nograd, y_inference, y_plain):
        assert y.grad_fn is None and y.dtype == dtype
        assert torch.equal(y, y_graph.detach()) and torch.equal(y, y_ref)


RULE = Rule(family.LIF, (1.0, 0.0), False, surrogate.arc_tan, 4.0, False)


def fused_lif(x):
    """The fused LIF with tau = 2 on ``N x T x F``."""
    return Fused.apply(x, None, torch.full((1, x.shape[2]), 0.5), RULE)


def test_saves_only_the_input_for_backward(cpu_kernel):
    """Every untraced path keeps x itself (the same storage, nothing new of its size) and
    recomputes the charges in the backward."""
    x = torch.rand(2, 5, 7, requires_grad=True)
    y, _ = fused_lif(x)
    saved = [t for t in y.grad_fn.saved_tensors if t is not None]
    large = [t for t in saved if t.numel() >= x.numel()]
    assert len(large) == 1 and large[0].untyped_storage().data_ptr() == x.data_ptr()
    assert sum(t.numel() for t in saved if t is not large[0]) == 7  # the decays, one per feature


def test_alpha_callable_read_once_per_forward():
    calls = []

    def alpha():
        calls.append(1)
        return 2.0

    x, g = _inputs((2, 5, 9))
    y, gx = _grads(neuron.LIF(alpha=alpha), x, g)
    assert len(calls) == 1
    _, gx_ref = _grads(lambda x: lif_reference(x, 2.0, 1.0, 0.0, "arctan", 2.0, False), x, g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


def test_custom_surrogate_without_derivative_uses_plain_loop():
    class Boxcar(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, alpha):
            ctx.save_for_backward(z)
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * (z.abs() < 0.5).to(z.dtype), None

    assert not surrogate.has_derivative(Boxcar)
    x, g = _inputs((2, 5, 11))
    _, gx = _grads(neuron.LIF(sg=Boxcar), x, g)
    _, gx_ref = _grads(lambda x: lif_reference(x, 2.0, 1.0, 0.0, "rectangular", 1.0, False), x, g)
    torch.testing.assert_close(gx, gx_ref)


def test_gradcheck_charge_path_float64():
    # Spikes are piecewise constant, so finite differences only see the charge path.
    # Sub-threshold, with ste (sigma' = 1) and a detached reset, the surrogate gradient of
    # sum(spikes) is exactly d(sum h)/dx, which gradcheck verifies numerically.
    x = (torch.rand(2, 4, 3, dtype=torch.float64) * 0.3).requires_grad_()

    def sum_h(x):
        u, total = torch.zeros_like(x[:, 0]), 0
        for t in range(x.shape[1]):
            u = u / 1.5 + x[:, t]
            total = total + u.sum()
        return total

    assert torch.autograd.gradcheck(sum_h, (x,))
    spikes = lif(x, tau=1.5, sg="ste", alpha=1.0, detach=True)
    assert spikes.sum() == 0
    (g_fused,) = torch.autograd.grad(spikes.sum(), x)
    (g_h,) = torch.autograd.grad(sum_h(x), x)
    torch.testing.assert_close(g_fused, g_h, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(tau=0.5), ValueError, "tau must be >= 1"),
        (dict(tau=float("inf")), ValueError, "tau must be finite"),
        (dict(tau="2"), TypeError, "tau must be a real number"),
        (dict(v_reset=1.0), ValueError, "v_reset must be < v_th"),
        (dict(v_th=float("nan")), ValueError, "v_th must be finite"),
        (dict(sg="tanh"), ValueError, "unknown surrogate name 'tanh'; known names: 'arctan'"),
        (dict(sg=42), TypeError, "sg must be"),
        (dict(alpha="4"), TypeError, "alpha must be a number or a zero-argument callable"),
        (dict(alpha=-1.0), ValueError, "alpha must be finite and > 0"),
        (dict(detach=1), TypeError, "detach must be a bool"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        neuron.LIF(**kwargs)


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (torch.zeros(5), ValueError, "at least 2 dims"),
        (torch.zeros(2, 3, dtype=torch.int64), TypeError, "floating-point"),
        (torch.zeros(2, 3, dtype=torch.bool), TypeError, "floating-point"),
    ],
)
def test_bad_input(x, exc, match):
    with pytest.raises(exc, match=match):
        neuron.LIF()(x)


def test_if_is_lif_without_leak():
    x, g = _inputs((2, 5, 8))
    y, gx = _grads(neuron.IF(v_reset=0.1), x, g)
    y_ref, gx_ref = _grads(lambda x: lif_reference(x, 1.0, 1.0, 0.1, "arctan", 4.0, False), x, g)
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    assert "tau=1.0" in repr(neuron.IF())


def test_torch_compile_runs_and_matches():
    mod = neuron.LIF(v_reset=-0.2)
    compiled = torch.compile(mod, backend="aot_eager", fullgraph=True)
    x, g = _inputs((2, 4, 16), dtype=torch.float32)
    y, gx = _grads(compiled, x, g)
    y_ref, gx_ref = _grads(mod, x, g)
    assert torch.equal(y, y_ref)
    torch.testing.assert_close(gx, gx_ref)


def test_alpha_callable_error_at_forward():
    mod = neuron.LIF(alpha=lambda: "sharp")
    with pytest.raises(TypeError, match="alpha must give a real number"):
        mod(torch.zeros(1, 2))


def test_host_kernel_is_used_and_fallback_works(monkeypatch, tmp_path):
    from snetx.snn import _host_kernel

    x = torch.rand(2, 3, 4, requires_grad=True)
    y, _ = fused_lif(x)
    assert y.grad_fn._forward_cls is Fused
    # without a compiler: "auto" falls back to eager, "host" says what is missing
    fresh = {"lib": None, "error": None, "build_seconds": None, "mode": "auto", "warned": False}
    monkeypatch.setattr(_host_kernel, "_state", fresh)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SNETX_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.warns(RuntimeWarning, match="no-such-compiler.*SNETX_CPU_KERNEL"):
        assert _host_kernel.available() is False
    y2 = lif(x.detach().double(), v_reset=0.1)
    y_ref = lif_reference(x.detach().double(), 2.0, 1.0, 0.1, "arctan", 4.0, False)
    assert torch.equal(y2, y_ref)
    _host_kernel.set_mode("compiled")  # the older name of "host"
    assert _host_kernel.mode() == "host"
    with pytest.raises(_host_kernel.KernelUnavailable, match="no-such-compiler"):
        _host_kernel.available()
    with pytest.raises(ValueError, match="mode must be one of"):
        _host_kernel.set_mode("fast")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("v_reset", [0.2, None])
@pytest.mark.parametrize("T", [1, 130, 301])
def test_long_sequences_recompute_the_charges_in_narrow_blocks(dtype, v_reset, T):
    # The host kernel's backward recomputes h from x in blocks whose width shrinks with T
    # (a 128 KiB buffer: 512 neurons at T <= 64, 48..96 at T = 301); F = 211 leaves a
    # partial block. Against the reference loop, soft and hard reset.
    x, g = _inputs((2, T, 211), dtype=dtype, seed=T)
    soft = v_reset is None
    # tau = 2: u / tau and u * (1 / tau) round alike, so float32 spikes match exactly too
    y, gx = _grads(lambda x: lif(x, tau=2.0, v_reset=v_reset, alpha=2.0), x, g)
    ref_reset = 0.0 if soft else v_reset
    if soft:  # the reference loop of the soft rule: u = h - v_th s
        from reference import heaviside

        def ref(x):
            step, u, out = heaviside(DERIVATIVES["arctan"]), torch.zeros_like(x[:, 0]), []
            for t in range(x.shape[1]):
                h = u / 2.0 + x[:, t]
                s = step.apply(h - 1.0, 2.0)
                u = h - 1.0 * s
                out.append(s)
            return torch.stack(out, 1)

    else:

        def ref(x):
            return lif_reference(x, 2.0, 1.0, ref_reset, "arctan", 2.0, False)

    y_ref, gx_ref = _grads(ref, x, g)
    assert torch.equal(y, y_ref)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gx, gx_ref, **tol)


@pytest.mark.parametrize("features", [65536, 65539])  # rows 32-byte aligned, and not
def test_large_outputs_written_with_streaming_stores_match_the_eager_path(features):
    # outputs of >= 2 MiB a thread take the host kernel's streaming-store path (the others
    # stay cached), and the last block of a row is shorter than the others when F is not a
    # multiple of the block: the same spikes and gradients as the eager torch ops, which
    # share no code
    from snetx.snn import _host_kernel

    shape = (2, 16, features)  # 2.1M float32 elements: 8 MiB per tensor, 4 MiB a thread
    x, g = _inputs(shape, dtype=torch.float32, seed=features)
    results = {}
    previous, threads = _host_kernel._state["mode"], torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for mode in ("host", "eager"):
            if mode == "host":
                try:
                    _host_kernel.load()
                except _host_kernel.KernelUnavailable as e:
                    pytest.skip(f"no host kernel: {e}")
            _host_kernel.set_mode(mode)
            results[mode] = _grads(lambda x: lif(x, v_reset=0.1), x, g)
            with torch.no_grad():
                results[mode + " no graph"] = lif(x, v_reset=0.1)
    finally:
        _host_kernel._state["mode"] = previous
        torch.set_num_threads(threads)
    (y_h, gx_h), (y_e, gx_e) = results["host"], results["eager"]
    assert torch.equal(y_h, y_e) and torch.equal(results["host no graph"], y_e)
    assert 0 < y_h.mean() < 1
    torch.testing.assert_close(gx_h, gx_e, rtol=1e-5, atol=1e-6)
