"""snetx.dataset: image dataset loaders (snetx-vision).

``snetx.dataset.vision`` for one process, ``snetx.dataset.ddp.vision`` over
DistributedSampler. Both expose ``mnist_dataset``, ``Fmnist_dataset``,
``cifar10_dataset``, ``cifar100_dataset`` and ``digits_dataset``;
:mod:`snetx.dataset.registry` holds the facts about each dataset (shape, classes,
statistics, files). ``snetx.dataset.neuromorphic`` reads event datasets (N-MNIST, SHD)
with tonic and integrates them into frames.
"""

from . import registry
from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError

__all__ = [
    "vision",
    "ddp",
    "neuromorphic",
    "registry",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetCorruptError",
]


def __getattr__(name):
    if name in ("vision", "ddp", "neuromorphic"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
