"""Spikes saved as bits: pack/unpack round trips bit for bit, only binary tensors are
packed, and a network's gradients are exactly those of the plain run."""

import torch
from snetx.snn import memory, neuron
from snetx.snn.algorithm import Tosnn
from torch import nn


def test_pack_round_trips_binary_tensors_and_leaves_others():
    g = torch.Generator().manual_seed(0)
    for shape in [(3, 5, 7), (64,), (2, 1, 9, 9)]:
        s = (torch.rand(shape, generator=g) < 0.3).float()
        p = memory.pack(s)
        assert isinstance(p, memory.PackedSpikes) and p.bits.numel() == -(-s.numel() // 8)
        assert torch.equal(memory.unpack(p), s)
    real = torch.rand(10, 10)
    assert memory.pack(real) is real
    assert memory.pack(torch.ones(4)) is not None  # tiny: kept as is
    assert memory.pack(torch.zeros(4, dtype=torch.int64)).dtype == torch.int64


def test_gradients_with_packed_spikes_are_exactly_the_plain_ones():
    torch.manual_seed(0)
    net = nn.Sequential(
        Tosnn(nn.Conv2d(2, 8, 3, padding=1)), neuron.LIF(),
        Tosnn(nn.Conv2d(8, 8, 3, padding=1)), neuron.LIF(),
        nn.Flatten(2), Tosnn(nn.Linear(8 * 8 * 8, 10)),
    ).double()  # fmt: skip
    x = torch.rand(3, 4, 2, 8, 8, dtype=torch.float64) * 2
    plain = torch.autograd.grad(net(x).pow(2).sum(), list(net.parameters()))
    packed_count = []
    original = memory.pack

    def counting(t):
        p = original(t)
        packed_count.append(isinstance(p, memory.PackedSpikes))
        return p

    # compact saving off: the layers then save the float spikes the hooks are given
    with memory.compact(False), torch.autograd.graph.saved_tensors_hooks(counting, memory.unpack):
        out = net(x)
    packed = torch.autograd.grad(out.pow(2).sum(), list(net.parameters()))
    for a, b in zip(plain, packed):
        assert torch.equal(a, b)
    assert sum(packed_count) >= 2  # the spike inputs of the second conv and the linear
    with memory.compact(False), memory.packed_spikes():
        out = net(x)
    again = torch.autograd.grad(out.pow(2).sum(), list(net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(plain, again))
