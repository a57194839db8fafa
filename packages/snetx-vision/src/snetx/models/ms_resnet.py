r"""MS-ResNet: membrane-shortcut residual networks (Hu et al., "Advancing Spiking Neural
Networks towards Deep Residual Learning", IEEE TNNLS 2024, arXiv:2112.08954), following
the authors' released ImageNet models (11.69 M and 21.80 M parameters for MS-ResNet-18
and -34 in the paper's ImageNet comparison).

The shortcut carries real-valued membrane input, not spikes: a block is pre-activation,

.. math::
    y = \text{BN}(\text{conv}(\text{LIF}(\text{BN}(\text{conv}(\text{LIF}(x))))))
        + \text{shortcut}(x)

with ``shortcut`` the identity, or a 1x1 conv + BN where the shape changes; the last BN
of each branch starts at scale 0 (as released). A final LIF turns the last block's
output into spikes before the average pool and the classifier.

``stem="imagenet"``: a 7x7 stride-2 conv + BN and a stride-2 first stage (the released
models downsample there instead of with a max-pool); ``stem="cifar"``: a 3x3 stride-1
conv + BN and a stride-1 first stage (32x32 inputs).

Example::

    >>> import torch
    >>> from snetx.models.ms_resnet import ms_resnet18
    >>> ms_resnet18(num_classes=10, stem="cifar")(torch.rand(2, 2, 3, 32, 32)).shape
    torch.Size([2, 2, 10])
"""

import torch
from snetx.snn.algorithm import Tosnn
from torch import nn

from . import _parts

__all__ = ["MSResNet", "MSBlock", "ms_resnet18", "ms_resnet34"]


class MSBlock(nn.Module):
    """``BN(conv(LIF(BN(conv(LIF(x)))))) + shortcut(x)``."""

    def __init__(self, cin, cout, stride, norm_layer, neuron):
        super().__init__()
        self.branch = nn.Sequential(
            neuron(),
            _parts.conv_norm(cin, cout, 3, stride, norm_layer),
            neuron(),
            _parts.conv_norm(cout, cout, 3, 1, norm_layer, zero_init=True),
        )
        self.shortcut = (
            _parts.conv_norm(cin, cout, 1, stride, norm_layer)
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return self.branch(x) + self.shortcut(x)


class MSResNet(nn.Module):
    r"""Args:
        layers (4 ints): blocks per stage.
        in_channels (int): default 3.
        num_classes (int): default 1000.
        norm_layer: called with the channel count, default ``nn.BatchNorm2d``.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.LIF``.
        stem (str): ``"imagenet"`` (default) or ``"cifar"``.

    Shape:
        - Input: :math:`(N, T, C, H, W)`, H and W at least 32 (``imagenet``) or 8
        - Output: :math:`(N, T, \text{num\_classes})`
    """

    def __init__(
        self, layers, in_channels=3, num_classes=1000, norm_layer=None, neuron=None,
        stem="imagenet",
    ):  # fmt: skip
        super().__init__()
        norm_layer, neuron = _parts.options(norm_layer, neuron, stem)
        self.min_size = 8 if stem == "cifar" else 32
        first = 1 if stem == "cifar" else 2
        parts, c = [_parts.stem_conv(stem, in_channels, 64, norm_layer)], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(n):
                stride = (first if i == 0 else 2) if j == 0 else 1
                parts.append(MSBlock(c, planes, stride, norm_layer, neuron))
                c = planes
        parts += [neuron(), Tosnn(nn.AdaptiveAvgPool2d(1))]
        self.features = nn.Sequential(*parts)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _parts.check_input("MSResNet", x, self.min_size)
        return self.fc(torch.flatten(self.features(x), 2))


def ms_resnet18(**kwargs):
    """MS-ResNet-18: blocks ``[2, 2, 2, 2]``."""
    return MSResNet((2, 2, 2, 2), **kwargs)


def ms_resnet34(**kwargs):
    """MS-ResNet-34: blocks ``[3, 4, 6, 3]``."""
    return MSResNet((3, 4, 6, 3), **kwargs)
