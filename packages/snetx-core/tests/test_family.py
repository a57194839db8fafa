"""CubaLIF and ALIF against their equations written out here as plain autograd loops (with
the surrogate table of reference.py), on both CPU paths, every surrogate, both resets,
detach, learned time constants, state across calls and 16-bit inputs."""

import itertools

import pytest
import torch
from reference import DERIVATIVES, heaviside
from snetx.snn import family, functional, neuron

SURROGATES = list(DERIVATIVES)


def cubalif_reference(x, tau_syn, tau, v_th, v_reset, name, alpha, detach, state0=None):
    """i = i/tau_syn + x; h = u/tau + i; s = H(h - v_th); u = reset(h)."""
    step = heaviside(DERIVATIVES[name])
    i, u = state0 if state0 is not None else (torch.zeros_like(x[:, 0]),) * 2
    out = []
    for t in range(x.shape[1]):
        i = i * (1 / tau_syn if not torch.is_tensor(tau_syn) else tau_syn) + x[:, t]
        h = u * (1 / tau if not torch.is_tensor(tau) else tau) + i
        s = step.apply(h - v_th, alpha)
        r = s.detach() if detach else s
        u = h - v_th * r if v_reset is None else h * (1 - r) + v_reset * r
        out.append(s)
    return torch.stack(out, 1), (i, u)


def alif_reference(x, tau, tau_adapt, beta, v_th, v_reset, name, alpha, detach, state0=None):
    """h = u/tau + x; th = v_th + beta a; s = H(h - th); u = reset(h, th); a = a/tau_a + s."""
    step = heaviside(DERIVATIVES[name])
    u, a = state0 if state0 is not None else (torch.zeros_like(x[:, 0]),) * 2
    out = []
    for t in range(x.shape[1]):
        h = u * (1 / tau) + x[:, t]
        th = v_th + beta * a
        s = step.apply(h - th, alpha)
        r = s.detach() if detach else s
        u = h - th * r if v_reset is None else h * (1 - r) + v_reset * r
        a = a * (1 / tau_adapt) + r
        out.append(s)
    return torch.stack(out, 1), (u, a)


def _x(shape=(3, 9, 4, 2), seed=0, scale=1.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * scale).requires_grad_()


def _compare(mod_out, ref_out, leaves):
    (y, st), (y_ref, st_ref) = mod_out, ref_out
    assert torch.equal(y.detach(), y_ref.detach())
    assert y.sum() > 0 and y.sum() < y.numel()  # some spikes, some silence
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    out = (y * w).sum() + sum((a * 0.3).sum() for a in st)
    ref = (y_ref * w).sum() + sum((a * 0.3).sum() for a in st_ref)
    for got, want in zip(torch.autograd.grad(out, leaves), torch.autograd.grad(ref, leaves)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,v_reset,detach", list(itertools.product(
    SURROGATES, [0.0, -0.2, None], [False, True])))  # fmt: skip
def test_cubalif_matches_its_equations(cpu_kernel, name, v_reset, detach):
    x = _x(seed=1)
    i0, u0 = (torch.rand(3, 4, 2, dtype=torch.float64).requires_grad_() for _ in range(2))
    m = neuron.CubaLIF(1.7, 2.5, 0.9, v_reset, name, 2.0, detach).double()
    got = functional.run_neuron(
        m.description, x, m._decays(), m._consts(), v_reset is None, m.sg, 2.0, detach,
        state0=family.CubaLIFState(i0, u0),
    )  # fmt: skip
    ref = cubalif_reference(x, 1.7, 2.5, 0.9, v_reset, name, 2.0, detach, (i0, u0))
    _compare(got, ref, (x, i0, u0))


@pytest.mark.parametrize("name,v_reset,detach", list(itertools.product(
    SURROGATES, [0.0, None], [False, True])))  # fmt: skip
def test_alif_matches_its_equations(cpu_kernel, name, v_reset, detach):
    x = _x(seed=2, scale=2.0)
    u0, a0 = (torch.rand(3, 4, 2, dtype=torch.float64).requires_grad_() for _ in range(2))
    m = neuron.ALIF(2.0, 6.0, 0.7, 1.0, v_reset, name, 3.0, detach).double()
    got = functional.run_neuron(
        m.description, x, m._decays(), m._consts(), v_reset is None, m.sg, 3.0, detach,
        state0=(u0, a0),
    )  # fmt: skip
    ref = alif_reference(x, 2.0, 6.0, 0.7, 1.0, v_reset, name, 3.0, detach, (u0, a0))
    _compare(got, ref, (x, u0, a0))


def test_learned_time_constants_per_channel(cpu_kernel):
    x = _x((2, 8, 3, 5), seed=3)
    m = neuron.CubaLIF(tau_syn=2.0, tau=3.0, learn=True, channels=3).double()
    with torch.no_grad():
        m.w_tau_syn.copy_(torch.tensor([0.1, -0.4, 0.7]))
        m.w.copy_(torch.tensor([-0.2, 0.3, -1.0]))
    y = m(x)
    k_syn = torch.sigmoid(m.w_tau_syn).view(3, 1)
    k_mem = torch.sigmoid(m.w).view(3, 1)
    # the reference takes decays, not time constants, when given tensors
    y_ref, _ = cubalif_reference(x, k_syn, k_mem, 1.0, 0.0, "arctan", 4.0, False)
    _compare((y, ()), (y_ref, ()), (x, m.w_tau_syn, m.w))
    assert m.tau_values("tau_syn").shape == (3,)
    assert [n for n, _ in m.named_parameters()] == ["w_tau_syn", "w"]


def test_alif_learns_tau_adapt_alone(cpu_kernel):
    x = _x((2, 12, 6), seed=4, scale=2.5)
    m = neuron.ALIF(tau=2.0, tau_adapt=5.0, beta=0.5, learn=("tau_adapt",)).double()
    (g,) = torch.autograd.grad(m(x).sum(), m.w_tau_adapt)
    k = torch.sigmoid(m.w_tau_adapt).detach().requires_grad_()
    y_ref = alif_ref_decay(x, 0.5, k, 0.5)
    (g_k,) = torch.autograd.grad(y_ref.sum(), k)
    torch.testing.assert_close(g, g_k * k * (1 - k), rtol=1e-10, atol=1e-12)
    assert g != 0


def alif_ref_decay(x, k_mem, k_adapt, beta):
    step = heaviside(DERIVATIVES["arctan"])
    u = a = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        h = u * k_mem + x[:, t]
        th = 1.0 + beta * a
        s = step.apply(h - th, 4.0)
        u = h * (1 - s)
        a = a * k_adapt + s
        out.append(s)
    return torch.stack(out, 1)


@pytest.mark.parametrize("make", [
    lambda: neuron.CubaLIF(tau_syn=3.0, stateful=True),
    lambda: neuron.ALIF(beta=0.4, v_reset=None, stateful=True),
])  # fmt: skip
def test_chunks_and_steps_equal_one_call(cpu_kernel, make):
    """State across calls (the state's named tuple handed over) keeps spikes and gradients."""
    x = _x((2, 10, 7), seed=5, scale=1.8)
    whole = make().double()
    whole.stateful = False
    y = whole(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    chunked = make().double()
    y_c = torch.cat([chunked(c) for c in x.split([3, 4, 3], 1)], 1)
    assert isinstance(chunked.state, chunked.description.state)
    (g_c,) = torch.autograd.grad(y_c.sum(), x)
    assert torch.equal(y, y_c)
    torch.testing.assert_close(g, g_c, rtol=1e-12, atol=1e-14)
    stepped = make().double()
    y_s = torch.stack([stepped.step(x[:, t]) for t in range(x.shape[1])], 1)
    assert torch.equal(y.detach(), y_s.detach())
    stepped.detach_state()
    assert all(not t.requires_grad for t in stepped.state)
    stepped.reset()
    assert stepped.state is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("cls", [neuron.CubaLIF, neuron.ALIF])
def test_every_float_dtype_keeps_float32_state(cpu_kernel, cls, dtype):
    x = (torch.rand(4, 6, 9) * 1.5).to(dtype).requires_grad_()
    y = cls()(x)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()
    # the same dynamics as float32 on the rounded input
    assert torch.equal(y.float(), cls()(x.detach().float()))


@pytest.mark.parametrize("cls", [neuron.CubaLIF, neuron.ALIF])
def test_torch_compile_traces_the_plain_step(cls):
    m = cls(v_reset=None)
    x = (torch.rand(3, 5, 4) * 1.5).requires_grad_()
    y = m(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    y_c = compiled(x)
    (g_c,) = torch.autograd.grad(y_c.sum(), x)
    assert torch.equal(y, y_c)
    torch.testing.assert_close(g, g_c)


def test_gradcheck_on_the_charge_path_float64():
    """Below threshold with ste (sigma' = 1) and a detached reset, the surrogate gradient
    of sum(spikes) is d(sum h)/dx, which gradcheck verifies by finite differences."""
    x = (torch.rand(2, 5, 3, dtype=torch.float64) * 0.2).requires_grad_()

    def sum_h(x):
        i = u = torch.zeros_like(x[:, 0])
        total = 0
        for t in range(x.shape[1]):
            i = i / 2.0 + x[:, t]
            u = u / 1.5 + i
            total = total + u.sum()
        return total

    assert torch.autograd.gradcheck(sum_h, (x,))
    m = neuron.CubaLIF(tau_syn=2.0, tau=1.5, v_th=5.0, sg="ste", alpha=1.0, detach=True)
    spikes = m(x)
    assert spikes.sum() == 0
    (g,) = torch.autograd.grad(spikes.sum(), x)
    (g_ref,) = torch.autograd.grad(sum_h(x), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-14)


def test_host_kernel_matches_the_eager_path_bit_for_bit(monkeypatch):
    from snetx.snn import _host_kernel

    try:
        _host_kernel.load()
    except _host_kernel.KernelUnavailable as e:
        pytest.skip(str(e))
    for cls in (neuron.CubaLIF, neuron.ALIF):
        x = torch.rand(4, 16, 33) * 1.6
        runs = []
        for mode in ("host", "eager"):
            monkeypatch.setitem(_host_kernel._state, "mode", mode)
            xi = x.clone().requires_grad_()
            y = cls()(xi)
            (y * torch.linspace(0, 1, 33)).sum().backward()
            runs.append((y, xi.grad))
        assert torch.equal(runs[0][0], runs[1][0])
        torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: neuron.ALIF(beta=-1.0), ValueError, "beta must be >= 0"),
    (lambda: neuron.CubaLIF(tau_syn=0.5), ValueError, "tau_syn must be >= 1"),
    (lambda: neuron.ALIF(tau_adapt=float("nan")), ValueError, "tau_adapt must be finite"),
    (lambda: neuron.CubaLIF(learn=("tau_adapt",)), ValueError, "learn names a time constant"),
    (lambda: neuron.CubaLIF(channels=3), ValueError, "set learn too"),
    (lambda: neuron.ALIF(learn=True, tau_adapt=1.0), ValueError, "initial value > 1"),
    (lambda: neuron.ALIF(v_reset=2.0), ValueError, "v_reset must be < v_th"),
    (lambda: neuron.ALIF(backend="tpu")(torch.rand(1, 2, 3)), ValueError, "no backend 'tpu'"),
    (lambda: functional.run_neuron(family.CUBALIF, torch.rand(2, 3, 4), (0.5, 0.5),
                                   (1.0, 0.0), False, None, 4.0, False,
                                   state0=torch.zeros(2, 4)),
     TypeError, r"state of cubalif is \(i, u\)"),
    (lambda: functional.run_neuron(family.ALIF, torch.rand(2, 3, 4), (0.5, 0.5),
                                   (1.0, 0.0, 1.0), False, None, 4.0, False,
                                   state0=(torch.zeros(2, 4), torch.zeros(3, 4))),
     ValueError, "state a has shape"),
])  # fmt: skip
def test_bad_arguments_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_stateful_neuron_refuses_a_state_of_another_shape():
    m = neuron.ALIF(stateful=True)
    m(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="call reset()"):
        m(torch.rand(5, 3, 4))


def test_every_description_is_in_the_host_library():
    """The library's neuron list and shapes follow the descriptions (checked on load)."""
    from snetx.snn import _host_kernel

    try:
        lib = _host_kernel.load()
    except _host_kernel.KernelUnavailable as e:
        pytest.skip(str(e))
    for desc in family.NEURONS.values():
        assert getattr(lib, f"snetx_{desc.name}_forward_f32")
    assert set(family.NEURONS) >= {"lif", "cubalif", "alif"}
