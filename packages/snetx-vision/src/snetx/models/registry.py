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

__all__ = ["ModelSpec", "ModelOption", "OPTIONS", "MODELS", "get", "names", "describe", "taking"]


@dataclass(frozen=True)
class ModelOption:
    """An option some models take, with its command-line form (``--name``): the models
    that list it in :attr:`ModelSpec.options` get ``default`` when it is not given; for
    the others, giving it is an error."""

    name: str
    default: object
    help: str
    choices: Tuple[str, ...] = ()
    type: Callable = str


#: the model options, by name (each is a ``snetx-train`` flag and a builder keyword)
OPTIONS = MappingProxyType(
    {
        "connect": ModelOption(
            "connect", "ADD", "SEW models: how a block joins its shortcut (default ADD)",
            ("ADD", "AND", "IAND"), str.upper,
        ),
    }
)  # fmt: skip


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
        default_input: ``(in_channels, size)`` the public builder defaults to (the data
            the model was made for).
    """

    name: str
    build: Callable
    min_size: int
    sizes: str
    kinds: Tuple[str, ...] = ("image", "events")
    multiple: int = 1
    options: Tuple[str, ...] = ()
    default_input: Tuple[int, Tuple[int, ...]] = (3, (32, 32))

    def builder(self):
        """The public lowercase builder of this model, as :mod:`snetx.models` exports it."""
        spec = self
        channels, size = self.default_input

        def build(*, num_classes=10, in_channels=channels, neuron=None, size=size, **options):
            if neuron is None:
                from snetx.snn.neuron import LIF as neuron
            unknown = set(options) - set(spec.options)
            if unknown:
                takes = ", ".join(spec.options) or "none beyond the common ones"
                raise TypeError(
                    f"{spec.name}() got unexpected options {sorted(unknown)}; it takes {takes}"
                )
            return spec.build(
                num_classes=num_classes, in_channels=in_channels, neuron=neuron, size=size,
                **options,
            )  # fmt: skip

        build.__name__ = build.__qualname__ = self.name
        build.__module__ = "snetx.models"
        extra = "".join(f", {o}=..." for o in self.options)
        build.__doc__ = (
            f"The registered model ``{self.name}``: {self.sizes}. Input ``N x T x "
            f"{'C x H x W' if self.kinds != ('sequence',) else 'F'}``, output ``N x T x "
            f"num_classes``.\n\n    Signature: ``{self.name}(*, num_classes=10, in_channels="
            f"{channels}, neuron=None, size={size}{extra})``; ``neuron`` is a zero-argument "
            "neuron factory (default :class:`snetx.snn.neuron.LIF`), ``size`` the input's "
            "``(H, W)`` (or ``(F,)``)."
        )
        return build

    def parameters(self) -> int:
        """Its parameter count at 10 classes and its default input (built on the meta
        device: no memory, no initialisation)."""
        import torch

        with torch.device("meta"):
            return sum(p.numel() for p in self.builder()().parameters())

    def supports(self, size: Tuple[int, ...], kind: str = "image") -> bool:
        if kind not in self.kinds:
            return False
        if kind == "sequence":
            return True
        return min(size) >= self.min_size and all(s % self.multiple == 0 for s in size)


def _scnn(num_classes, in_channels, neuron, size=None):
    from .scnn import SpikingCNN

    pool = max(4, min(size) // 4) if size else 4  # a quarter of the input's side
    return SpikingCNN(in_channels, num_classes, neuron=neuron, pool=pool)


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

def _transformer(module, name, num_classes, in_channels, neuron, size=None):
    import importlib

    builder = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return builder(num_classes=num_classes, in_channels=in_channels, neuron=neuron)


def _family(module, configs, num_classes, in_channels, neuron, size=None):
    """The family name (``spikformer``, ``sdt``, ``qkformer``): its ImageNet configuration
    from 224x224, its DVS one for 2-channel frames, else its CIFAR one."""
    small, dvs, large = configs
    side = min(size) if size else 32
    name = large if side >= 224 else (dvs if in_channels == 2 and dvs else small)
    return _transformer(module, name, num_classes, in_channels, neuron, size)


#: the spiking transformers: name -> (module, default input, sizes in words, multiple)
_TRANSFORMERS = {
    "spikformer_4_384": ("spikformer", (3, (32, 32)), "32x32 (CIFAR)", 4),
    "spikformer_2_256_dvs": ("spikformer", (2, (128, 128)), "128x128 event frames", 16),
    "spikformer_8_384": ("spikformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "spikformer_8_512": ("spikformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "spikformer_8_768": ("spikformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "sdt_2_512": ("sdt", (3, (32, 32)), "32x32 (CIFAR)", 4),
    "sdt_2_256_dvs": ("sdt", (2, (64, 64)), "64x64 event frames (as released)", 4),
    "sdt_8_384": ("sdt", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "sdt_8_512": ("sdt", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "sdt_8_768": ("sdt", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "qkformer_4_384": ("qkformer", (3, (32, 32)), "32x32 (CIFAR)", 4),
    "qkformer_10_384": ("qkformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "qkformer_10_512": ("qkformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
    "qkformer_10_768": ("qkformer", (3, (224, 224)), "224x224 (ImageNet)", 16),
}
_FAMILIES = {
    "spikformer": ("spikformer_4_384", "spikformer_2_256_dvs", "spikformer_8_512"),
    "sdt": ("sdt_2_512", "sdt_2_256_dvs", "sdt_8_512"),
    "qkformer": ("qkformer_4_384", None, "qkformer_10_512"),
}


def _transformer_specs():
    specs = {}
    for family, configs in _FAMILIES.items():
        specs[family] = ModelSpec(
            family, functools.partial(_family, family, configs), 32,
            f"{configs[2]} from 224x224, {configs[1] or configs[0]} for 2-channel event "
            f"frames, else {configs[0]} (H, W divisible by 4, by 16 for 224x224)",
            multiple=4, default_input=(3, (32, 32)),
        )  # fmt: skip
    for name, (module, default, sizes, multiple) in _TRANSFORMERS.items():
        specs[name] = ModelSpec(
            name, functools.partial(_transformer, module, name), multiple * 2, sizes,
            ("image", "events"), multiple, default_input=default,
        )  # fmt: skip
    return specs


_VGGS = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")

MODELS = MappingProxyType(
    {
        "scnn": ModelSpec(
            "scnn", _scnn, 8, "8x8 or larger (made for 8x8 digits and 28x28 MNIST)",
            default_input=(1, (8, 8)),
        ),
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
            default_input=(2, (48, 48)),
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
            default_input=(2, (128, 128)),
        ),
        "smlp": ModelSpec(
            "smlp", functools.partial(_mlp, False), 1, "spike sequences N x T x F", ("sequence",),
            default_input=(700, (700,)),
        ),
        "srnn": ModelSpec(
            "srnn", functools.partial(_mlp, True), 1, "spike sequences N x T x F", ("sequence",),
            default_input=(700, (700,)),
        ),
        **_transformer_specs(),
    }
)


def names():
    """The registered model names, in registration order."""
    return tuple(MODELS)


def taking(option: str):
    """The names of the models that take ``option``."""
    return [name for name, spec in MODELS.items() if option in spec.options]


def describe() -> str:
    """``"scnn (66.2 k), vgg11 (9.23 M), ..."``: each model with its parameter count at
    10 classes and its default input (built here: call it for help, not on every run)."""

    def count(n):
        return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"

    return ", ".join(f"{name} ({count(spec.parameters())})" for name, spec in MODELS.items())


def get(name: str) -> ModelSpec:
    """The spec of ``name``; ValueError naming the known models when unknown."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}") from None
