"""snetx.models: spiking network architectures (snetx-vision).

Every model the training command builds (:mod:`.registry`) has a lowercase builder here,
as torchvision has: ``snetx.models.resnet19(num_classes=100)``,
``snetx.models.sew_resnet18(connect="ADD")``, ``snetx.models.vggsnn(in_channels=2)``, the
spiking transformers ``snetx.models.spikformer_4_384()``, ``sdt_8_512()``,
``qkformer_10_384()`` (and ``spikformer``/``sdt``/``qkformer``, which pick the
configuration by the input).
Keyword arguments: ``num_classes`` (10), ``in_channels`` and ``size`` (the data the
model was made for), ``neuron`` (a zero-argument neuron factory; default LIF) and the
model's own options.

Example::

    >>> import torch
    >>> from snetx import models
    >>> net = models.scnn(num_classes=10)
    >>> net(torch.rand(2, 4, 1, 8, 8)).shape
    torch.Size([2, 4, 10])
    >>> models.resnet19.ResNet19.__name__   # the module of the same name is the builder too
    'ResNet19'
"""

import types

from . import qkformer, registry, resnet19, scnn, sdt, smlp, spikformer, svggnet, vggsnn


class _BuilderModule(types.ModuleType):
    """A model module named like its registered model (``scnn``, ``resnet19``, ...): it is
    also that model's builder, so ``snetx.models.resnet19(...)`` builds whether the name
    resolves to the function or to the module (importing the module rebinds the name)."""

    def __call__(self, *args, **kwargs):
        return registry.MODELS[self.__name__.rsplit(".", 1)[1]].builder()(*args, **kwargs)


for _module in (resnet19, scnn, smlp, vggsnn, spikformer, sdt, qkformer):
    _module.__class__ = _BuilderModule
for _name, _spec in registry.MODELS.items():
    if _name not in globals():
        globals()[_name] = _spec.builder()

__all__ = ["registry", "svggnet", *registry.MODELS]
