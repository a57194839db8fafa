r"""A spiking MLP for spike trains ``N x T x F`` (the Spiking Heidelberg Digits: F = 700),
feed-forward or recurrent.

Each hidden layer is a linear map and a spiking neuron; the read-out is a linear layer at
every time step. With ``recurrent=True`` (the model ``srnn``) each hidden layer also feeds
its own spikes of the previous step back, :math:`I[t] = W x[t] + V s[t-1]`
(:class:`snetx.snn.layer.Recurrent` around the neuron), as the recurrent SNNs reported on
SHD do (Cramer et al., 2020; Yin et al., 2021 with adaptive neurons: ``neuron=ALIF``).

Example::

    >>> import torch
    >>> from snetx.models.smlp import SpikingMLP
    >>> from snetx.snn import neuron
    >>> net = SpikingMLP(700, 20, hidden=(64, 64), recurrent=True, neuron=neuron.ALIF)
    >>> net(torch.rand(2, 5, 700)).shape
    torch.Size([2, 5, 20])
"""

import torch
from snetx.snn import layer as _layer
from snetx.snn import neuron as _neuron
from torch import nn

__all__ = ["SpikingMLP"]


class SpikingMLP(nn.Module):
    """Args:
        in_features (int): F of the input. Default 700.
        num_classes (int): default 20.
        hidden (tuple of int): widths of the hidden layers. Default (256, 256).
        recurrent (bool): recurrent hidden layers. Default False.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.LIF``.
        dropout (float): between layers. Default 0.

    Shape:
        - Input: :math:`(N, T, F)`
        - Output: :math:`(N, T, \\text{num\\_classes})`
    """

    def __init__(
        self, in_features=700, num_classes=20, hidden=(256, 256), recurrent=False, neuron=None,
        dropout=0.0,
    ):  # fmt: skip
        super().__init__()
        neuron = neuron or _neuron.LIF
        self.recurrent = recurrent
        widths = (in_features, *hidden)
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.neurons = nn.ModuleList(neuron() for _ in hidden)
        self.rec = None
        if recurrent:  # around the same neuron modules (their parameters counted once)
            self.rec = nn.ModuleList(_layer.Recurrent(m, b) for m, b in zip(self.neurons, hidden))
        self.drop = nn.Dropout(dropout)
        self.readout = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"SpikingMLP expects N x T x F, got shape {tuple(x.shape)}")
        for i, (fc, lif) in enumerate(zip(self.fc, self.neurons)):
            current = fc(x)
            x = self.drop(self.rec[i](current) if self.recurrent else lif(current))
        return self.readout(x)
