r"""ResNet-19: the CIFAR network of the tdBN paper (Zheng et al., AAAI 2021, "Going Deeper
With Directly-Trained Larger Spiking Neural Networks") as trained in the TET paper (Deng
et al., ICLR 2022), following the TET authors' released model.

``conv3x3(64) - [128] x 3 - [256] x 3 (stride 2) - [512] x 2 (stride 2) - avgpool -
FC 256 - LIF - FC num_classes``, each ``[c]`` a basic block ``conv3x3 - BN - LIF -
conv3x3 - BN, + shortcut, LIF`` whose shortcut is a 1x1 conv + BN where the shape changes
(the first block of every stage, the stem having 64 channels). 12.63 M parameters with 10
classes, the figure the papers comparing against ResNet-19 tabulate.

Example::

    >>> import torch
    >>> from snetx.models.resnet19 import ResNet19
    >>> ResNet19(num_classes=10)(torch.rand(2, 2, 3, 32, 32)).shape
    torch.Size([2, 2, 10])
"""

import torch
from snetx.snn.algorithm import Tosnn
from torch import nn

from . import _parts

__all__ = ["ResNet19", "BasicBlock", "STAGES"]

#: (channels, blocks, stride) of the three stages
STAGES = ((128, 3, 1), (256, 3, 2), (512, 2, 2))


class BasicBlock(nn.Module):
    """``LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))``."""

    def __init__(self, cin, cout, stride, norm_layer, neuron, zero_init_residual=False):
        super().__init__()
        self.conv1 = _parts.conv_norm(cin, cout, 3, stride, norm_layer)
        self.sn1 = neuron()
        self.conv2 = _parts.conv_norm(cout, cout, 3, 1, norm_layer, zero_init_residual)
        self.shortcut = (
            _parts.conv_norm(cin, cout, 1, stride, norm_layer)
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.sn2 = neuron()

    def forward(self, x):
        return self.sn2(self.conv2(self.sn1(self.conv1(x))) + self.shortcut(x))


class ResNet19(nn.Module):
    r"""Args:
        in_channels (int): default 3.
        num_classes (int): default 10.
        norm_layer: called with the channel count, default ``nn.BatchNorm2d``.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.LIF``.
        stem (str): ``"cifar"`` (3x3 stride 1, the paper's) or ``"imagenet"`` (7x7 stride 2).
        zero_init_residual (bool): start each block's last BN scale at 0. Default False.

    Shape:
        - Input: :math:`(N, T, C, H, W)`, H and W at least 8 (``cifar``) or 16
        - Output: :math:`(N, T, \text{num\_classes})`
    """

    def __init__(
        self,
        in_channels=3,
        num_classes=10,
        norm_layer=None,
        neuron=None,
        stem="cifar",
        zero_init_residual=False,
    ):
        super().__init__()
        norm_layer, neuron = _parts.options(norm_layer, neuron, stem)
        self.min_size = 8 if stem == "cifar" else 16
        blocks, c = [_parts.stem_conv(stem, in_channels, 64, norm_layer), neuron()], 64
        for cout, n, stride in STAGES:
            for i in range(n):
                blocks.append(
                    BasicBlock(c, cout, stride if i == 0 else 1, norm_layer, neuron,
                               zero_init_residual)
                )  # fmt: skip
                c = cout
        blocks.append(Tosnn(nn.AdaptiveAvgPool2d(1)))
        self.features = nn.Sequential(*blocks)
        self.fc1 = nn.Linear(c, 256)
        self.sn = neuron()
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _parts.check_input("ResNet19", x, self.min_size)
        return self.fc2(self.sn(self.fc1(torch.flatten(self.features(x), 2))))
