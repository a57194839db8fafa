r"""Activation memory for training: spikes saved for backward as bits.

A spiking layer's weights see spikes (0 or 1), and autograd keeps that input for the
weight gradient — as float32, 32 bits per spike. :func:`packed_spikes` keeps every saved
tensor that holds only zeros and ones as one bit per element instead (8 per byte), and
restores it bit for bit when the backward needs it: gradients are exactly those of the
plain run. Tensors with any other value (a neuron's input current, a BatchNorm's input)
are kept as they are.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx.snn import memory, neuron
    >>> from snetx.snn.algorithm import Tosnn
    >>> net = nn.Sequential(Tosnn(nn.Linear(64, 64)), neuron.LIF(), Tosnn(nn.Linear(64, 10)))
    >>> x = torch.rand(8, 4, 64)
    >>> with memory.packed_spikes():
    ...     loss = net(x).sum()
    >>> loss.backward()                      # the same gradients as without packing

The cost is one pass over each saved tensor to see whether it is binary, and the packing
itself. Measured on 2 CPU threads, one training step at T = 4: VGGSNN (8 x 2 x 48 x 48)
keeps 284 MiB instead of 393 (0.72x) in 1.17x the time, SEW-ResNet-18 (8 x 3 x 64 x 64)
773 MiB instead of 920 (0.84x) in 1.12x the time: a convolution's spike input is one of
the three tensors a conv-BN-neuron layer saves (the BatchNorm's and the neuron's inputs
are real-valued), so it is opt-in for now.
"""

import contextlib

import torch

__all__ = ["packed_spikes", "pack", "unpack", "PackedSpikes"]

_SHIFTS = {}


def _shifts(device):
    s = _SHIFTS.get(device)
    if s is None:
        s = _SHIFTS[device] = torch.arange(8, dtype=torch.uint8, device=device)
    return s


class PackedSpikes:
    """A binary tensor as bits: ``bits`` (uint8, 8 elements each), and what restores it."""

    __slots__ = ("bits", "shape", "dtype", "numel")

    def __init__(self, bits, shape, dtype, numel):
        self.bits, self.shape, self.dtype, self.numel = bits, shape, dtype, numel


def pack(t):
    """``t`` as :class:`PackedSpikes` when it is a floating tensor of zeros and ones (with
    at least 64 elements: smaller ones are not worth it), else ``t`` itself."""
    if not (t.is_floating_point() and t.numel() >= 64) or t.device.type == "meta":
        return t
    if not bool(((t == 0) | (t == 1)).all()):
        return t
    flat = t.detach().reshape(-1)
    pad = (-flat.numel()) % 8
    bits = flat.to(torch.uint8)
    if pad:
        bits = torch.cat([bits, bits.new_zeros(pad)])
    bits = (bits.view(-1, 8) << _shifts(t.device)).sum(1, dtype=torch.uint8)
    return PackedSpikes(bits, t.shape, t.dtype, t.numel())


def unpack(p):
    """The tensor :func:`pack` was given, bit for bit (contiguous)."""
    if not isinstance(p, PackedSpikes):
        return p
    bits = (p.bits.unsqueeze(1) >> _shifts(p.bits.device)) & 1
    return bits.reshape(-1)[: p.numel].to(p.dtype).view(p.shape)


@contextlib.contextmanager
def packed_spikes(enabled=True):
    """Within this context, tensors saved for backward that hold only 0 and 1 are kept
    as bits (see the module doc). ``enabled=False`` is a no-op, for a switch."""
    if not enabled:
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield
