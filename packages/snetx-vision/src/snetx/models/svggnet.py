r"""Spiking VGG (docs/specification.md): torchvision's VGG configurations with LIF neurons.

Each conv (with its norm layer in the ``_bn`` variants) runs per frame through
:class:`~snetx.snn.algorithm.Tosnn` and is followed by a neuron; max-pools run per frame;
an adaptive average pool, then a flatten from dim 2 (time is never merged into the
features), then the classifier on ``N x T x F``. Input ``N x T x C x H x W``, output
``N x T x num_classes``: per-step logits, as TET needs (average over dim 1 to predict).

``head="imagenet"`` is torchvision's classifier (7x7 pool, 4096-4096-classes with a
neuron and dropout after each hidden layer); ``head="compact"`` pools to 1x1 and has a
single linear layer: the practical choice for 32x32 inputs (CIFAR), ~9M instead of ~130M
parameters for VGG11.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx.models import svggnet
    >>> net = svggnet.vgg11_bn(nn.BatchNorm2d, num_classes=10, head="compact")
    >>> net(torch.rand(2, 4, 3, 32, 32)).shape
    torch.Size([2, 4, 10])
"""

from typing import Callable, Optional

import torch
from snetx.snn import neuron as _neuron
from snetx.snn.algorithm import Tosnn
from torch import nn

__all__ = [
    "VGG",
    "cfgs",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


def make_features(cfg, norm_layer=None, in_channels=3, neuron=None):
    neuron = neuron or _neuron.LIF
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(Tosnn(nn.MaxPool2d(kernel_size=2, stride=2)))
            continue
        conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
        block = nn.Sequential(conv, norm_layer(v)) if norm_layer is not None else conv
        layers += [Tosnn(block), neuron()]
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Spiking VGG over a ``features`` stack; see the module docstring.

    Args:
        cfg: a key of :data:`cfgs` ("A", "B", "D", "E") or a layer list.
        norm_layer: e.g. ``nn.BatchNorm2d`` (called with the channel count) or None.
        num_classes (int): default 1000.
        dropout (float): classifier dropout (imagenet head). Default 0.5.
        in_channels (int): 3 for RGB, 1 for MNIST. Default 3.
        init_weights (bool): torchvision's initialization. Default True.
        neuron: zero-argument factory of the spiking neuron; default
            ``snetx.snn.neuron.LIF``. ``snetx.cuend.neuron.LIF`` or a
            ``functools.partial(LIF, tau=...)`` plug in.
        head (str): "imagenet" (default) or "compact".

    Shape:
        - Input: :math:`(N, T, C, H, W)`
        - Output: :math:`(N, T, \\text{num\\_classes})`
    """

    def __init__(
        self,
        cfg="A",
        norm_layer=None,
        num_classes=1000,
        dropout=0.5,
        in_channels=3,
        init_weights=True,
        neuron: Optional[Callable[[], nn.Module]] = None,
        head="imagenet",
    ):
        super().__init__()
        if head not in ("imagenet", "compact"):
            raise ValueError(f"head must be 'imagenet' or 'compact', got {head!r}")
        layers = cfgs[cfg] if isinstance(cfg, str) else list(cfg)
        neuron = neuron or _neuron.LIF
        self.features = make_features(layers, norm_layer, in_channels, neuron)
        width = [v for v in layers if v != "M"][-1]
        # each "M" halves H and W: smaller inputs would pool to nothing
        self.min_size = 2 ** layers.count("M")
        if head == "imagenet":
            self.avgpool = Tosnn(nn.AdaptiveAvgPool2d((7, 7)))
            self.classifier = nn.Sequential(
                nn.Linear(width * 7 * 7, 4096),
                neuron(),
                nn.Dropout(dropout),
                nn.Linear(4096, 4096),
                neuron(),
                nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = Tosnn(nn.AdaptiveAvgPool2d((1, 1)))
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        if init_weights:
            self.reset_parameters()

    def reset_parameters(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"VGG expects N x T x C x H x W, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            m = self.min_size
            raise ValueError(f"this VGG needs inputs of at least {m}x{m}, got {h}x{w}")
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 2))


def _variant(cfg, bn, name):
    if bn:

        def build(norm_layer=nn.BatchNorm2d, **kwargs):
            return VGG(cfg, norm_layer, **kwargs)

    else:

        def build(**kwargs):
            return VGG(cfg, None, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"Spiking VGG, configuration {cfg}{' with norm layers' if bn else ''}: "
        f"``{name}({'norm_layer=nn.BatchNorm2d, ' if bn else ''}**kwargs)``; see :class:`VGG`."
    )
    return build


vgg11, vgg11_bn = _variant("A", False, "vgg11"), _variant("A", True, "vgg11_bn")
vgg13, vgg13_bn = _variant("B", False, "vgg13"), _variant("B", True, "vgg13_bn")
vgg16, vgg16_bn = _variant("D", False, "vgg16"), _variant("D", True, "vgg16_bn")
vgg19, vgg19_bn = _variant("E", False, "vgg19"), _variant("E", True, "vgg19_bn")
