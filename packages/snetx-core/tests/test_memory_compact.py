"""Compact saving (snetx.snn.memory): exact gradients, counted bytes, and checkpoints.

References: the same network with ``memory.compact(False)`` (the plain torch modules,
whose saved tensors autograd keeps as they are) and, for chunks, one call on the whole
sequence."""

import pytest
import torch
from snetx.snn import layer, memory, neuron
from snetx.snn.algorithm import Tosnn
from torch import nn


def conv_bn(cin, cout):
    return Tosnn(nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout)))


def vgg_like(dtype=torch.float64, neuron_cls=neuron.LIF):
    torch.manual_seed(0)
    return nn.Sequential(
        conv_bn(2, 8), neuron_cls(),
        conv_bn(8, 8), neuron_cls(),
        Tosnn(nn.AvgPool2d(2)),
        conv_bn(8, 16), neuron_cls(),
        Tosnn(nn.MaxPool2d(2)),
        Tosnn(nn.Flatten(1)),
        Tosnn(nn.Linear(16 * 4 * 4, 5)),
    ).to(dtype)  # fmt: skip


def close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol * max(1.0, a.abs().max().item())


def grads(net, x, on):
    net.zero_grad()
    x = x.clone().requires_grad_()
    with memory.compact(on):
        out = net(x)
    (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_compact_gradients_are_the_plain_ones(dtype, tol):
    """BatchNorm's output is computed by aten's normalisation from the batch statistics:
    the same up to rounding (the bound); running statistics and batch count exactly."""
    x = torch.rand(3, 4, 2, 16, 16, dtype=dtype) * 2
    plain, compact = vgg_like(dtype), vgg_like(dtype)
    ref, got = grads(plain, x, False), grads(compact, x, True)
    assert close(ref[0], got[0], tol) and close(ref[1], got[1], tol)
    for a, b in zip(ref[2], got[2]):
        assert close(a, b, tol)
    for a, b in zip(plain.buffers(), compact.buffers()):
        assert torch.equal(a, b)


def test_packed_layers_give_bit_for_bit_the_plain_gradients():
    def net():
        torch.manual_seed(0)
        return nn.Sequential(
            Tosnn(nn.Conv2d(2, 8, 3, padding=1)), neuron.LIF(), Tosnn(nn.Conv2d(8, 8, 3)),
            neuron.LIF(), Tosnn(nn.AvgPool2d(2)), Tosnn(nn.Conv2d(8, 8, 1)), neuron.LIF(),
            Tosnn(nn.MaxPool2d(2)), Tosnn(nn.Flatten(1)), Tosnn(nn.Linear(8 * 3 * 3, 5)),
        )  # fmt: skip

    x = torch.rand(3, 4, 2, 14, 14) * 2
    ref, got = grads(net(), x, False), grads(net(), x, True)
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    for a, b in zip(ref[2], got[2]):
        assert torch.equal(a, b)


def saved_storages(net, x):
    """{storage: (bytes, dtype)} autograd keeps, parameters, buffers and input left out."""
    return memory.saved_storages(lambda: net(x), (*net.parameters(), *net.buffers(), x))


def test_a_conv_layer_keeps_its_norm_input_and_its_spike_input_as_bits():
    n, t, c, hw = 2, 4, 8, 16
    torch.manual_seed(0)
    net = nn.Sequential(conv_bn(2, c), neuron.LIF(), conv_bn(c, c), neuron.LIF())
    x = torch.rand(n, t, 2, hw, hw) * 3
    elems = n * t * c * hw * hw
    with memory.compact(False):
        plain = saved_storages(net, x)
    compact = saved_storages(net, x)
    big = lambda d: sorted(b for b, _ in d.values() if b > 4 * c)  # noqa: E731
    decays = [4 * c * hw * hw] * 2  # each neuron's per-feature decay row
    # plain: two conv outputs (BN inputs), two BN outputs (neuron inputs), the spikes
    assert big(plain) == sorted([4 * elems] * 5 + decays)
    # compact: the two BN inputs as float, the spikes as bits (8 per byte)
    assert big(compact) == sorted([4 * elems, 4 * elems, elems // 8] + decays)
    assert sum(b for b, _ in compact.values()) < 0.45 * sum(b for b, _ in plain.values())


def test_codes_round_trip_exactly_and_refuse_other_values():
    spikes = (torch.rand(1000) > 0.7).float()
    sums = spikes + (torch.rand(1000) > 0.5).float()
    quarters = torch.randint(0, 5, (1000,)).float() / 4
    for t, scale, size in ((spikes, 0.0, 125), (sums, 1.0, 1000), (quarters, 4.0, 1000)):
        p = memory.encode(t)
        assert p.scale == scale and p.bits.numel() == size and p.bits.dtype == torch.uint8
        assert torch.equal(memory.decode(p), t)
        q = memory.encode_known(t, 1.0 if scale == 0.0 else scale, 1 if scale == 0.0 else 4)
        assert torch.equal(memory.decode(q), t)
    for bad in (0.3, -1.0, 256.0, float("nan"), 1.0 / 3):
        t = spikes.clone()
        t[17] = bad
        assert memory.encode(t) is None


def test_a_mark_or_recipe_of_a_tensor_modified_in_place_is_not_used():
    """In-place edits between producer and consumer void the mark/recipe: the layers fall
    back to keeping the tensor, and gradients stay those of the plain modules."""

    class Edit(nn.Module):
        def forward(self, x):
            return x.mul_(0.5)  # a BN output shifts

    def net():
        torch.manual_seed(0)
        return nn.Sequential(conv_bn(2, 4), Edit(), neuron.LIF(), conv_bn(4, 4),
                             neuron.LIF()).double()

    x = torch.rand(2, 3, 2, 8, 8, dtype=torch.float64) * 3
    ref, got = grads(net(), x, False), grads(net(), x, True)
    for a, b in zip(ref[2], got[2]):
        assert torch.equal(a, b)
    with torch.no_grad():  # (with a graph, autograd itself forbids editing spikes)
        s = neuron.LIF()(torch.rand(2, 3, 64) * 3)
    assert memory.codes(s) == (1.0, 1)
    s.add_(0)
    assert memory.codes(s) is None


def test_hooked_modules_run_as_they_are():
    calls = []
    net = vgg_like(torch.float32)
    net[0].module[0].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    net(torch.rand(2, 3, 2, 16, 16)).sum().backward()
    assert calls == [torch.Size([6, 8, 16, 16])]


def test_double_backward_through_a_compact_layer_says_so():
    net = vgg_like(torch.float64)
    x = torch.rand(2, 2, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice|once_differentiable"):
        g.sum().backward()


# ---- checkpoints -------------------------------------------------------------------------


def test_a_checkpoint_gives_the_gradients_and_statistics_of_the_plain_module():
    x = torch.rand(3, 4, 2, 16, 16, dtype=torch.float64) * 2
    plain, wrapped = vgg_like(), memory.Checkpoint(vgg_like())
    ref, got = grads(plain, x, False), grads(wrapped, x, True)
    assert torch.equal(ref[0], got[0]) and close(ref[1], got[1])
    for a, b in zip(ref[2], got[2]):
        assert close(a, b)
    for a, b in zip(plain.buffers(), wrapped.buffers()):  # one update, not two
        assert torch.equal(a, b)


def test_checkpoint_layers_wraps_each_layer_and_keeps_only_packed_inputs():
    x = torch.rand(3, 4, 2, 16, 16, dtype=torch.float64) * 2
    plain, wrapped = vgg_like(), memory.checkpoint_layers(vgg_like())
    assert [n for n, _ in wrapped.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert sum(checked for checked, _ in wrapped._snetx_plan) == 3
    ref, got = grads(plain, x, True), grads(wrapped, x, True)
    assert torch.equal(ref[0], got[0])
    for a, b in zip(ref[2], got[2]):
        assert close(a, b)
    kept = saved_storages(wrapped, x)
    # the first layer's input is the (excluded) data; the second layer's input spikes
    # (bits), the third layer's 2x2 averages (a byte each), the max pool's indices (int16)
    # and the read-out's spikes (bits); the average pool keeps nothing
    assert sorted(kept.values(), key=str) == sorted([
        (3 * 4 * 8 * 16 * 16 // 8, torch.uint8), (3 * 4 * 8 * 8 * 8, torch.uint8),
        (3 * 4 * 16 * 4 * 4 * 2, torch.int16), (3 * 4 * 16 * 4 * 4 // 8, torch.uint8),
    ], key=str)  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 3, 7, 20])
@pytest.mark.parametrize("make", [neuron.LIF, neuron.ALIF, neuron.CubaLIF,
                                  lambda: layer.Recurrent(neuron.LIF(), 12)])
def test_time_chunks_hand_the_state_over_like_one_call(chunk, make):
    def net():
        torch.manual_seed(0)
        return nn.Sequential(Tosnn(nn.Linear(6, 12)), make(), Tosnn(nn.Linear(12, 3))).double()

    x = torch.rand(2, 20, 6, dtype=torch.float64) * 2
    ref = grads(net(), x, True)
    got = grads(memory.Checkpoint(net(), chunk=chunk), x, True)
    assert torch.equal(ref[0], got[0])
    assert close(ref[1], got[1])
    for a, b in zip(ref[2], got[2]):
        assert close(a, b)


def test_a_stateful_neuron_keeps_its_state_across_checkpointed_calls():
    def net():
        torch.manual_seed(0)
        return nn.Sequential(Tosnn(nn.Linear(4, 8)), neuron.LIF(stateful=True)).double()

    x = torch.rand(2, 9, 4, dtype=torch.float64) * 2
    plain, wrapped = net(), memory.Checkpoint(net(), chunk=2)
    outs = [(plain(x[:, :5]).sum() + plain(x[:, 5:]).sum()),
            (wrapped(x[:, :5]).sum() + wrapped(x[:, 5:]).sum())]
    for o in outs:
        o.backward()
    assert torch.equal(plain[1].state, wrapped.module[1].state)
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        assert close(a.grad, b.grad)


def test_chunks_refuse_batch_statistics_and_bad_sizes():
    with pytest.raises(ValueError, match="BatchNorm2d in training mode"):
        memory.Checkpoint(vgg_like(), chunk=2)(torch.rand(2, 4, 2, 16, 16, dtype=torch.float64))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk must be a positive int"):
            memory.Checkpoint(nn.Identity(), chunk=bad)


def test_a_checkpoint_replays_the_random_state():
    def net():
        torch.manual_seed(0)
        return nn.Sequential(Tosnn(nn.Linear(6, 12)), neuron.LIF(), nn.Dropout(0.3),
                             Tosnn(nn.Linear(12, 3))).double()

    x = torch.rand(2, 10, 6, dtype=torch.float64) * 2
    torch.manual_seed(5)
    ref = grads(net(), x, True)
    torch.manual_seed(5)
    got = grads(memory.Checkpoint(net()), x, True)
    assert torch.equal(ref[0], got[0])
    for a, b in zip(ref[2], got[2]):
        assert close(a, b)


@pytest.mark.slow
def test_torch_compile_runs_the_plain_modules_with_the_same_gradients():
    """Under torch.compile the marks and compact layers step aside (inductor plans its own
    saving): the compiled model trains to the eager compact model's gradients."""

    def net():
        torch.manual_seed(0)
        return nn.Sequential(
            conv_bn(2, 8), neuron.LIF(), Tosnn(nn.AvgPool2d(2)),
            Tosnn(nn.Conv2d(8, 8, 3, padding=1)), neuron.LIF(), Tosnn(nn.Flatten(1)),
            Tosnn(nn.Linear(8 * 8 * 8, 4)),
        )  # fmt: skip

    x = torch.rand(2, 3, 2, 16, 16) * 2
    eager, compiled = net(), net()
    eager(x).square().sum().backward()
    torch.compile(compiled)(x).square().sum().backward()
    for a, b in zip(eager.parameters(), compiled.parameters()):
        assert close(a.grad, b.grad, 1e-5)


def test_spike_matmul_keeps_marked_operands_packed_with_the_plain_gradients():
    """A spiking attention's q @ k^T and (q k^T) @ v: transposed views of marked spikes
    stay marked, are kept as bits (the counts q k^T as bytes), gradients are exact."""
    torch.manual_seed(0)
    lif = neuron.LIF()
    x = (torch.rand(2, 3, 16, 8, dtype=torch.float64) * 3).requires_grad_()
    w = torch.randn(2, 3, 16, 8, dtype=torch.float64, requires_grad=True)

    def attention(on):
        with memory.compact(on):
            q = lif(x)
            k, v = q.transpose(-2, -1), lif(x * 0.7)
            return memory.spike_matmul(memory.spike_matmul(q, k), v) * w

    grads = []
    for on in (False, True):
        out = attention(on)
        grads.append(torch.autograd.grad(out.sum(), (x, w)))
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    kept = memory.saved_storages(lambda: attention(True), (x, w))
    small = {b for b, _ in kept.values()}
    assert 2 * 3 * 16 * 8 // 8 in small  # q as bits
    assert 2 * 3 * 16 * 16 in small  # the counts q k^T (0..8) as bytes
