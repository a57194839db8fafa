"""Reliability round 3 in the core: no silent wrong second-order gradient, no state
tensor from another device or of a non-float dtype quietly ignored, clear kernel-mode
errors."""

import pytest
import torch
from snetx.snn import _fused, functional, neuron
from torch import nn

NEURONS = {
    "LIF hard": lambda: neuron.LIF(),
    "LIF soft": lambda: neuron.LIF(v_reset=None),
    "PLIF": lambda: neuron.PLIF(tau=2.0),
    "PLIF soft, stateful": lambda: neuron.PLIF(tau=2.0, v_reset=None, stateful=True),
    "CubaLIF learned": lambda: neuron.CubaLIF(learn=True),
    "ALIF soft, stateful": lambda: neuron.ALIF(v_reset=None, stateful=True),
}


def _net(make):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), make(), nn.Linear(6, 2)).double()


def _x():
    return (torch.rand(3, 5, 4, dtype=torch.float64) * 2).requires_grad_()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
@pytest.mark.parametrize("name", NEURONS)
def test_double_backward_through_a_fused_neuron_raises(name, cpu_kernel):
    net, x = _net(NEURONS[name]), _x()
    # order 1: autograd.grad(create_graph=True), then backward of a gradient penalty
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="fused neuron's backward is not differentiable"):
        g.pow(2).sum().backward()
    # a penalty differentiated towards one parameter only, before or after the neuron
    for param in (net[0].weight, net[2].weight):
        functional.reset_net(net)
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match="not differentiable"):
            torch.autograd.grad(g.pow(2).sum(), param, allow_unused=True)
    # order 2: backward(create_graph=True), then autograd.grad of the stored gradient
    functional.reset_net(net)
    x2 = _x()
    net(x2).sum().backward(create_graph=True)
    with pytest.raises(RuntimeError, match="lif_loop"):
        torch.autograd.grad(x2.grad.sum(), x2)


@pytest.mark.parametrize("name", NEURONS)
def test_first_order_gradients_are_the_same_with_create_graph(name, cpu_kernel):
    net, x = _net(NEURONS[name]), _x()
    (plain,) = torch.autograd.grad(net(x).sum(), x)
    functional.reset_net(net)
    (graph,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    torch.testing.assert_close(graph.detach(), plain, rtol=0, atol=0)


def test_second_order_gradients_of_the_plain_loop_match_an_independent_step():
    """The advertised way to second-order gradients: lif_loop against the same equations
    written here with a smooth (sigmoid) spike, where torch differentiates everything."""
    torch.manual_seed(1)
    x = torch.rand(2, 6, 3, dtype=torch.float64, requires_grad=True)

    class Smooth(torch.autograd.Function):  # spike = sigmoid(4 z) in both directions
        @staticmethod
        def forward(ctx, z, alpha):
            ctx.save_for_backward(z)
            return torch.sigmoid(4 * z)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            s = torch.sigmoid(4 * z)
            return g * 4 * s * (1 - s), None

    def mine(x):
        u, out = torch.zeros_like(x[:, 0]), []
        for t in range(x.shape[1]):
            h = u / 2.0 + x[:, t]
            s = torch.sigmoid(4 * (h - 1.0))
            u = h * (1 - s)
            out.append(s)
        return torch.stack(out, 1)

    def second(f):
        (g,) = torch.autograd.grad(f(x).pow(2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
        return gg

    loop = lambda x: functional.lif_loop(x, 2.0, 1.0, 0.0, Smooth, 4.0, False)  # noqa: E731
    torch.testing.assert_close(second(loop), second(mine), rtol=1e-10, atol=1e-12)


def test_no_double_backward_leaves_plain_backward_untouched():
    g = torch.ones(3)
    with torch.no_grad():  # a plain backward runs without grad mode
        out = _fused.no_double_backward((g, None))
    assert out[0] is g and out[1] is None


@pytest.mark.parametrize(
    "u0,error,match",
    [
        (torch.zeros(2, 4, device="meta"), ValueError, "u0 is on meta, but the input is on cpu"),
        (torch.zeros(2, 4, dtype=torch.int64), TypeError, "u0 must be a floating-point"),
        (torch.zeros(2, 4, dtype=torch.bool), TypeError, "u0 must be a floating-point"),
    ],
)
def test_state_on_another_device_or_of_another_kind_is_refused(u0, error, match, cpu_kernel):
    x = torch.rand(2, 3, 4)
    with pytest.raises(error, match=match):
        functional.lif(x, u0=u0)
    with pytest.raises(error, match=match):  # also for an empty input, where nothing runs
        functional.lif(x[:, :0], u0=u0)
    lif = neuron.LIF(stateful=True)
    lif.state = u0
    with pytest.raises((ValueError, TypeError), match="meta|floating-point"):
        lif(x)


def test_a_state_from_the_same_device_still_changes_the_result(cpu_kernel):
    """The check does not disable u0: starting charged fires earlier than from rest."""
    x = torch.full((1, 2, 1), 0.6)
    assert functional.lif(x).sum() == 0
    assert functional.lif(x, u0=torch.full((1, 1), 1.0)).sum() > 0


def test_a_bogus_cpu_kernel_mode_names_the_variable(monkeypatch):
    from snetx.snn import _host_kernel

    monkeypatch.setitem(_host_kernel._state, "mode", None)
    monkeypatch.setenv("SNETX_CPU_KERNEL", "bogus")
    with pytest.raises(ValueError, match="SNETX_CPU_KERNEL must be one of auto, host, eager"):
        _host_kernel.mode()
