r"""The models snetx-train can build, in one place: name -> :class:`ModelSpec`.

Each entry builds a network ``N x T x ... -> N x T x num_classes`` from
``(num_classes, in_channels, neuron, size)`` and says which inputs it takes: the kind of
data (static images, event frames, spike sequences) and the sizes.

Example::

    >>> from snetx.models import registry
    >>> spec = registry.get("vgg11_bn")
    >>> spec.supports((32, 32)), spec.supports((8, 8))
    (True, False)
    >>> registry.get("scnn").sizes
    '8x8 or larger (made for 8x8 digits and 28x28 MNIST)'
"""

import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Tuple

__all__ = ["ModelSpec", "MODELS", "get", "names"]


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one model.

    Args:
        name: the key (``--model`` of snetx-train).
        build: ``build(num_classes=..., in_channels=..., neuron=..., size=...)`` ->
            ``nn.Module``; ``size`` is the input's ``(H, W)`` (or ``(F,)``).
        min_size: the smallest H and W it takes.
        sizes: the supported input sizes, in words (for error messages).
        kinds: the kinds of data it takes (see :class:`snetx.dataset.registry.DatasetSpec`).
        multiple: H and W must be multiples of this.
        options: the extra keyword options ``build`` takes (``("connect",)`` for SEW).
    """

    name: str
    build: Callable
    min_size: int
    sizes: str
    kinds: Tuple[str, ...] = ("image", "events")
    multiple: int = 1
    options: Tuple[str, ...] = ()

    def supports(self, size: Tuple[int, ...], kind: str = "image") -> bool:
        if kind not in self.kinds:
            return False
        if kind == "sequence":
            return True
        return min(size) >= self.min_size and all(s % self.multiple == 0 for s in size)


def _scnn(num_classes, in_channels, neuron, size=None):
    from .scnn import SpikingCNN

    return SpikingCNN(in_channels, num_classes, neuron=neuron)


def _vgg(variant, num_classes, in_channels, neuron, size=None):
    from . import svggnet

    return getattr(svggnet, variant)(
        num_classes=num_classes, in_channels=in_channels, neuron=neuron, head="compact", dropout=0.1
    )


def _vggsnn(num_classes, in_channels, neuron, size=None):
    from .vggsnn import VGGSNN

    return VGGSNN(in_channels, num_classes, input_size=size or 48, neuron=neuron)


def _mlp(recurrent, num_classes, in_channels, neuron, size=None):
    from .smlp import SpikingMLP

    return SpikingMLP(in_channels, num_classes, recurrent=recurrent, neuron=neuron)


#: below this input side the residual networks take the CIFAR stem (3x3, stride 1), from it
#: ResNet's ImageNet stem (7x7 stride 2, and SEW's max-pool)
IMAGENET_STEM_FROM = 128


def _stem(size):
    return "imagenet" if size is not None and min(size) >= IMAGENET_STEM_FROM else "cifar"


def _resnet(module, fn, num_classes, in_channels, neuron, size=None, **options):
    import importlib

    factory = getattr(importlib.import_module(f"{__package__}.{module}"), fn)
    return factory(
        num_classes=num_classes, in_channels=in_channels, neuron=neuron, stem=_stem(size),
        **options,
    )  # fmt: skip


def _sew_wide7b(num_classes, in_channels, neuron, size=None, **options):
    from .sew_resnet import SEWWide7B

    side = size[0] if size else 128
    return SEWWide7B(in_channels, num_classes, input_size=side, neuron=neuron, **options)


_RESNET_SIZES = "8x8 or larger (3x3 stem below 128x128, ResNet's 7x7 stride-2 stem from 128)"
_RESNETS = {
    "resnet19": ("resnet19", "ResNet19", ()),
    "sew_resnet18": ("sew_resnet", "sew_resnet18", ("connect",)),
    "sew_resnet34": ("sew_resnet", "sew_resnet34", ("connect",)),
    "sew_resnet50": ("sew_resnet", "sew_resnet50", ("connect",)),
    "ms_resnet18": ("ms_resnet", "ms_resnet18", ()),
    "ms_resnet34": ("ms_resnet", "ms_resnet34", ()),
}

_VGGS = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")

MODELS = MappingProxyType(
    {
        "scnn": ModelSpec("scnn", _scnn, 8, "8x8 or larger (made for 8x8 digits and 28x28 MNIST)"),
        **{
            v: ModelSpec(v, functools.partial(_vgg, v), 32, "32x32 or larger (five 2x2 max-pools)")
            for v in _VGGS
        },
        "vggsnn": ModelSpec(
            "vggsnn",
            _vggsnn,
            16,
            "event frames with H, W divisible by 16 (48x48, 128x128)",
            ("events",),
            16,
        ),
        **{
            name: ModelSpec(
                name, functools.partial(_resnet, module, fn), 8, _RESNET_SIZES, options=opts
            )
            for name, (module, fn, opts) in _RESNETS.items()
        },
        "sew_wide7b": ModelSpec(
            "sew_wide7b",
            _sew_wide7b,
            128,
            "square event frames with a side divisible by 128 (128x128)",
            ("events",),
            128,
            ("connect",),
        ),
        "smlp": ModelSpec(
            "smlp", functools.partial(_mlp, False), 1, "spike sequences N x T x F", ("sequence",)
        ),
        "srnn": ModelSpec(
            "srnn", functools.partial(_mlp, True), 1, "spike sequences N x T x F", ("sequence",)
        ),
    }
)


def names():
    """The registered model names, in registration order."""
    return tuple(MODELS)


def get(name: str) -> ModelSpec:
    """The spec of ``name``; ValueError naming the known models when unknown."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None
