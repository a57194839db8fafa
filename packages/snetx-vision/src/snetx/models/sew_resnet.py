r"""SEW-ResNet: spike-element-wise residual networks (Fang et al., "Deep Residual Learning
in Spiking Neural Networks", NeurIPS 2021), following the authors' released ImageNet models
(11.69 M, 21.79 M and 25.56 M parameters for SEW-ResNet-18/34/50 in the paper's ImageNet
comparison: ResNet's own counts, since neurons add none).

A block's residual branch ends in a neuron, so both of its inputs are spikes ``S`` (the
branch) and ``A`` (the identity, or ``LIF(BN(conv1x1(x)))`` where the shape changes), and
the connect function ``g`` combines them:

.. math::
    \text{ADD}: A + S, \qquad \text{AND}: A \wedge S = A S, \qquad
    \text{IAND}: A \wedge \neg S = A (1 - S)

``stem="imagenet"`` is ResNet's 7x7 stride-2 conv and 3x3 stride-2 max-pool;
``stem="cifar"`` a 3x3 stride-1 conv without the pool (32x32 inputs). Also here the SEW
paper's CIFAR10-DVS network (:class:`SEWWide7B`).

Example::

    >>> import torch
    >>> from snetx.models.sew_resnet import sew_resnet18
    >>> sew_resnet18(num_classes=10, stem="cifar", connect="IAND")(
    ...     torch.rand(2, 2, 3, 32, 32)).shape
    torch.Size([2, 2, 10])
"""

import torch
from snetx.snn import memory
from snetx.snn import neuron as _neuron
from snetx.snn.algorithm import Tosnn
from torch import nn

from . import _parts

__all__ = [
    "CONNECT",
    "SEWResNet",
    "SEWWide7B",
    "sew_resnet18",
    "sew_resnet34",
    "sew_resnet50",
]

#: connect functions g(A, S): A the shortcut's spikes, S the residual branch's
CONNECT = {
    "ADD": lambda a, s: a + s,
    "AND": lambda a, s: a * s,
    "IAND": lambda a, s: a * (1.0 - s),
}


def _connect(name):
    key = str(name).upper()
    if key not in CONNECT:
        raise ValueError(f"connect must be one of {', '.join(CONNECT)}, got {name!r}")
    return key


class _Block(nn.Module):
    def __init__(self, branch, shortcut, connect):
        super().__init__()
        self.branch, self.shortcut, self.connect = branch, shortcut, connect

    def forward(self, x):
        a, s = self.shortcut(x), self.branch(x)
        if self.connect == "ADD":
            # small integers stay known as such, so the next convolution keeps them packed
            return memory.mark_sum(a + s, a, s)
        # CONNECT's product, with its two spike operands kept as bits
        return memory.spike_and(a, s, invert=self.connect == "IAND")

    def extra_repr(self):
        return f"connect={self.connect}"


def _shortcut(cin, cout, stride, norm_layer, neuron):
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(_parts.conv_norm(cin, cout, 1, stride, norm_layer), neuron())


def basic_block(cin, planes, stride, norm_layer, neuron, connect):
    branch = nn.Sequential(
        _parts.conv_norm(cin, planes, 3, stride, norm_layer),
        neuron(),
        _parts.conv_norm(planes, planes, 3, 1, norm_layer),
        neuron(),
    )
    return _Block(branch, _shortcut(cin, planes, stride, norm_layer, neuron), connect), planes


def bottleneck(cin, planes, stride, norm_layer, neuron, connect):
    cout = planes * 4
    branch = nn.Sequential(
        _parts.conv_norm(cin, planes, 1, 1, norm_layer),
        neuron(),
        _parts.conv_norm(planes, planes, 3, stride, norm_layer),
        neuron(),
        _parts.conv_norm(planes, cout, 1, 1, norm_layer),
        neuron(),
    )
    return _Block(branch, _shortcut(cin, cout, stride, norm_layer, neuron), connect), cout


class SEWResNet(nn.Module):
    r"""Args:
        block: :func:`basic_block` or :func:`bottleneck`.
        layers (4 ints): blocks per stage.
        in_channels (int): default 3.
        num_classes (int): default 1000.
        connect (str): ``"ADD"`` (default), ``"AND"`` or ``"IAND"``.
        norm_layer: called with the channel count, default ``nn.BatchNorm2d``.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.LIF``.
        stem (str): ``"imagenet"`` (default) or ``"cifar"``.

    Shape:
        - Input: :math:`(N, T, C, H, W)`, H and W at least 32 (``imagenet``) or 8
        - Output: :math:`(N, T, \text{num\_classes})`
    """

    def __init__(
        self,
        block,
        layers,
        in_channels=3,
        num_classes=1000,
        connect="ADD",
        norm_layer=None,
        neuron=None,
        stem="imagenet",
    ):
        super().__init__()
        norm_layer, neuron = _parts.options(norm_layer, neuron, stem)
        self.connect = _connect(connect)
        self.min_size = 8 if stem == "cifar" else 32
        parts = [_parts.stem_conv(stem, in_channels, 64, norm_layer), neuron()]
        if stem == "imagenet":
            parts.append(Tosnn(nn.MaxPool2d(3, stride=2, padding=1)))
        c = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                b, c = block(c, planes, stride, norm_layer, neuron, self.connect)
                parts.append(b)
        parts.append(Tosnn(nn.AdaptiveAvgPool2d(1)))
        self.features = nn.Sequential(*parts)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _parts.check_input(type(self).__name__, x, self.min_size)
        return self.fc(torch.flatten(self.features(x), 2))


def sew_resnet18(**kwargs):
    """SEW-ResNet-18: basic blocks ``[2, 2, 2, 2]``."""
    return SEWResNet(basic_block, (2, 2, 2, 2), **kwargs)


def sew_resnet34(**kwargs):
    """SEW-ResNet-34: basic blocks ``[3, 4, 6, 3]``."""
    return SEWResNet(basic_block, (3, 4, 6, 3), **kwargs)


def sew_resnet50(**kwargs):
    """SEW-ResNet-50: bottleneck blocks ``[3, 4, 6, 3]``, expansion 4."""
    return SEWResNet(bottleneck, (3, 4, 6, 3), **kwargs)


class SEWWide7B(nn.Module):
    r"""Wide-7B-Net, the SEW paper's CIFAR10-DVS network (Sec. 4.3 and its released code):
    ``c64k1-BN-PLIF - {SEW(64) - MP2} x 4 - c128k1-BN-PLIF - {SEW(128) - MP2} x 3 - FC``,
    each ``SEW(c)`` a block ``{c3x3-BN-PLIF} x 2`` joined to its input by the connect
    function. Seven 2x2 max-pools take 128x128 frames to 1x1.

    Args:
        in_channels (int): default 2 (polarities).
        num_classes (int): default 10.
        connect (str): default ``"ADD"``.
        input_size (int): frame side, a multiple of 128. Default 128.
        norm_layer: default ``nn.BatchNorm2d``.
        neuron: zero-argument neuron factory, default ``snetx.snn.neuron.PLIF`` (the
            paper's, time constant starting at 2).

    Shape:
        - Input: :math:`(N, T, C, H, W)` with ``H = W = input_size``
        - Output: :math:`(N, T, \text{num\_classes})`
    """

    def __init__(
        self,
        in_channels=2,
        num_classes=10,
        connect="ADD",
        input_size=128,
        norm_layer=None,
        neuron=None,
    ):
        super().__init__()
        if input_size % 128 or input_size < 128:
            raise ValueError(f"SEWWide7B needs a frame side divisible by 128, got {input_size}")
        norm_layer = norm_layer or nn.BatchNorm2d
        neuron = neuron or _neuron.PLIF
        self.connect, self.input_size = _connect(connect), input_size
        parts, c = [], in_channels
        for width, n in ((64, 4), (128, 3)):
            parts += [_parts.conv_norm(c, width, 1, 1, norm_layer), neuron()]
            c = width
            for _ in range(n):
                branch = nn.Sequential(
                    _parts.conv_norm(c, c, 3, 1, norm_layer),
                    neuron(),
                    _parts.conv_norm(c, c, 3, 1, norm_layer),
                    neuron(),
                )
                parts += [_Block(branch, nn.Identity(), self.connect), Tosnn(nn.MaxPool2d(2))]
        self.features = nn.Sequential(*parts)
        self.fc = nn.Linear(c * (input_size // 128) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(
                f"SEWWide7B({self.input_size}) expects N x T x C x {self.input_size} x "
                f"{self.input_size}, got {tuple(x.shape)}"
            )
        return self.fc(torch.flatten(self.features(x), 2))
