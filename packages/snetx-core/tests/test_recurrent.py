"""snetx.snn.layer.Recurrent against the recurrence written out here as a plain autograd
loop (x_in[t] = x[t] + W s[t-1] + b, then the neuron's equations from test_family), on
both CPU paths and the step-by-step path, with state across calls."""

import pytest
import torch
from snetx.snn import functional, layer, neuron
from test_family import alif_reference, cubalif_reference


def recurrent_reference(x, w, b, cell):
    """cell(x_in (N x 1 x F), state) -> (spikes N x 1 x F, state)."""
    s, st, out = None, None, []
    for t in range(x.shape[1]):
        x_in = x[:, t] if s is None else x[:, t] + s @ w.t()
        if b is not None:
            x_in = x_in + b
        y, st = cell(x_in.unsqueeze(1), st)
        s = y[:, 0]
        out.append(s)
    return torch.stack(out, 1)


CELLS = {
    "lif": (lambda: neuron.LIF(tau=2.0, v_reset=None),
            lambda x, st: cubalif_reference(x, 1e30, 2.0, 1.0, None, "arctan", 4.0, False, st)),
    "cubalif": (lambda: neuron.CubaLIF(tau_syn=2.0, tau=3.0, detach=True),
                lambda x, st: cubalif_reference(x, 2.0, 3.0, 1.0, 0.0, "arctan", 4.0, True, st)),
    "alif": (lambda: neuron.ALIF(tau=2.0, tau_adapt=8.0, beta=0.8, sg="sigmoid"),
             lambda x, st: alif_reference(x, 2.0, 8.0, 0.8, 1.0, 0.0, "sigmoid", 4.0, False,
                                          st)),
}  # fmt: skip


def _data(seed=0, shape=(3, 11, 6)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 1.2).requires_grad_()


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("path", ["fused", "stepwise"])
def test_matches_the_plain_recurrence(cpu_kernel, cell, bias, path, monkeypatch):
    make, ref_cell = CELLS[cell]
    torch.manual_seed(1)
    rec = layer.Recurrent(make(), 6, bias=bias).double()
    if path == "stepwise":
        monkeypatch.setattr(layer.Recurrent, "_can_fuse", lambda self, x: False)
    x = _data(len(cell))
    y = rec(x)
    w = rec.weight.detach().clone().requires_grad_()
    b = None if not bias else rec.bias.detach().clone().requires_grad_()
    y_ref = recurrent_reference(x, w, b, ref_cell)
    assert torch.equal(y, y_ref) and 0 < y.sum() < y.numel()
    probe = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    params = [rec.weight] + ([rec.bias] if bias else [])
    got = torch.autograd.grad((y * probe).sum(), [x, *params])
    want = torch.autograd.grad((y_ref * probe).sum(), [x, w, *([b] if bias else [])])
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_fused_node_is_one_autograd_node_and_learns_decays(cpu_kernel):
    rec = layer.Recurrent(neuron.ALIF(learn=True), 5).double()
    x = _data(3, (2, 7, 5))
    y = rec(x)
    assert type(y.grad_fn).__name__ == "_RecurrentFusedBackward"
    y.sum().backward()
    stepwise = layer.Recurrent(neuron.ALIF(learn=True), 5).double()
    stepwise.load_state_dict(rec.state_dict())
    stepwise._can_fuse = lambda x: False
    stepwise(x).sum().backward()
    for (name, p), q in zip(rec.named_parameters(), stepwise.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("cell", list(CELLS))
def test_chunks_with_state_equal_one_call(cpu_kernel, cell):
    make = CELLS[cell][0]
    torch.manual_seed(2)
    whole = layer.Recurrent(make(), 6).double()
    x = _data(4)
    y = whole(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    m = make()
    m.stateful = True
    chunked = layer.Recurrent(m, 6).double()
    chunked.load_state_dict(whole.state_dict())
    y_c = torch.cat([chunked(c) for c in x.split([4, 1, 6], 1)], 1)
    (g_c,) = torch.autograd.grad(y_c.sum(), x)
    assert torch.equal(y, y_c)
    torch.testing.assert_close(g, g_c, rtol=1e-10, atol=1e-12)
    functional.reset_net(torch.nn.Sequential(chunked))
    assert chunked.state is None and chunked.neuron.state is None
    with pytest.raises(ValueError, match="call reset"):
        chunked(x[:, :2])
        chunked(x[:2, :2])


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="Recurrent wraps a neuron"):
        layer.Recurrent(torch.nn.ReLU(), 4)
    with pytest.raises(ValueError, match="features must be an int"):
        layer.Recurrent(neuron.LIF(), 0)
    with pytest.raises(ValueError, match=r"expects N x T x 4"):
        layer.Recurrent(neuron.LIF(), 4)(torch.rand(2, 3, 5))


def test_double_backward_raises(cpu_kernel):
    rec = layer.Recurrent(neuron.CubaLIF(), 4).double()
    x = _data(5, (2, 5, 4))
    (g,) = torch.autograd.grad(rec(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        g.sum().backward()
