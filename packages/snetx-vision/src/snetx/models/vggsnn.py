r"""VGGSNN: the DVS network of the TET paper (Deng et al., ICLR 2022, Sec. 5 and its code),
for event frames ``N x T x 2 x H x W``.

``64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2-FC``: 3x3 convolutions
(stride 1, padding 1) each with a norm layer and a spiking neuron, 2x2 average pools, and a
linear read-out of the ``512 x H/16 x W/16`` features at every time step. The paper uses
``2 x 48 x 48`` inputs (CIFAR10-DVS resized); ``2 x 128 x 128`` (DVS Gesture, CIFAR10-DVS
at full size) works the same with a larger read-out.

Example::

    >>> import torch
    >>> from snetx.models.vggsnn import VGGSNN
    >>> VGGSNN(num_classes=10, input_size=48)(torch.rand(2, 3, 2, 48, 48)).shape
    torch.Size([2, 3, 10])
"""

import torch
from snetx.snn import neuron as _neuron
from snetx.snn.algorithm import Tosnn
from torch import nn

__all__ = ["VGGSNN", "LAYERS"]

#: channels of the convolutions, "A" an average pool
LAYERS = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")


class VGGSNN(nn.Module):
    """Args:
        in_channels (int): 2 (polarities). Default 2.
        num_classes (int): default 10.
        input_size (int or (h, w)): the frame size, divisible by 16. Default 48.
        norm_layer: called with the channel count, default ``nn.BatchNorm2d``.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.LIF``.

    Shape:
        - Input: :math:`(N, T, C, H, W)` with ``(H, W) = input_size``
        - Output: :math:`(N, T, \\text{num\\_classes})`
    """

    def __init__(self, in_channels=2, num_classes=10, input_size=48, norm_layer=None, neuron=None):
        super().__init__()
        h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if h % 16 or w % 16 or min(h, w) < 16:
            raise ValueError(f"VGGSNN needs a frame size divisible by 16, got {h}x{w}")
        self.input_size = (h, w)
        norm_layer = norm_layer or nn.BatchNorm2d
        neuron = neuron or _neuron.LIF
        layers, c = [], in_channels
        for v in LAYERS:
            if v == "A":
                layers.append(Tosnn(nn.AvgPool2d(2)))
            else:
                layers += [Tosnn(nn.Sequential(nn.Conv2d(c, v, 3, padding=1), norm_layer(v)))]
                layers.append(neuron())
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * (h // 16) * (w // 16), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"VGGSNN({self.input_size[0]}x{self.input_size[1]}) expects "
                f"N x T x C x {self.input_size[0]} x {self.input_size[1]}, got {tuple(x.shape)}"
            )
        return self.classifier(torch.flatten(self.features(x), 2))
