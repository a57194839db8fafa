r"""A small spiking CNN for 8x8 (digits) and 28x28 (MNIST) inputs.

Three conv-BN-LIF blocks (width, 2 width, 2 width) with a 2x2 average pool after the second,
an adaptive average pool to ``pool x pool`` and a linear read-out per time step. The
registry takes ``pool`` a quarter of the input's side (4 for 8x8 digits, 7 for 28x28
MNIST: a plain 2x2 average there, where pooling 14x14 to 4x4 lost detail and held MNIST
at 97.5%; see benchmarks/mnist_subset.py).

Example::

    >>> import torch
    >>> from snetx.models.scnn import SpikingCNN
    >>> SpikingCNN(in_channels=1, num_classes=10)(torch.rand(2, 4, 1, 8, 8)).shape
    torch.Size([2, 4, 10])
"""

import torch
from snetx.snn import neuron as _neuron
from snetx.snn.algorithm import Tosnn
from torch import nn

__all__ = ["SpikingCNN"]


def _block(cin, cout):
    return Tosnn(
        nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
    )


class SpikingCNN(nn.Module):
    """Input ``N x T x C x H x W``, output per-step logits ``N x T x num_classes``.

    Args:
        in_channels (int): default 1.
        num_classes (int): default 10.
        width (int): channels of the first block. Default 32.
        neuron: zero-argument neuron factory (default ``snetx.snn.neuron.LIF``).
        dropout (float): before the read-out. Default 0.
        pool (int): the side of the last feature maps (adaptive average pool). Default 4.
    """

    def __init__(self, in_channels=1, num_classes=10, width=32, neuron=None, dropout=0.0,
                 pool=4):  # fmt: skip
        super().__init__()
        neuron = neuron or _neuron.LIF
        self.features = nn.Sequential(
            _block(in_channels, width),
            neuron(),
            _block(width, 2 * width),
            neuron(),
            Tosnn(nn.AvgPool2d(2)),  # average, not max: NIR (and snetx-export) has it
            _block(2 * width, 2 * width),
            neuron(),
            Tosnn(nn.AdaptiveAvgPool2d(pool)),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * width * pool * pool, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"SpikingCNN expects N x T x C x H x W, got shape {tuple(x.shape)}")
        return self.classifier(torch.flatten(self.features(x), 2))
