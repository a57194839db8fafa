"""Single-process loaders: ``*_dataset(data_dir, batch_size, test_batch_size, transforms=None)``
-> ``(train_loader, test_loader)``.

Datasets live under ``data_dir``: ``MNIST/raw``, ``FashionMNIST/raw``,
``CIFAR10/cifar-10-batches-py``, ``CIFAR100/cifar-100-python`` (torchvision's formats);
``digits`` needs no files. The train loader shuffles and drops the last partial batch;
the test loader does neither.

Keyword options: ``download`` (default True), ``num_workers`` (default: up to 4, one core
left free), ``pin_memory`` (default: when CUDA is available), ``seed`` (reproducible
shuffling), ``persistent_workers`` (default True when there are workers; False starts them
afresh each epoch, seeded from the loader's generator, which makes their random
augmentation reproducible from a saved generator state).

A damaged IDX file raises :class:`snetx.dataset.DatasetCorruptError` naming the file and
the fault (bad header, truncated, image and label counts that differ, labels out of range).

Example::

    >>> from snetx.dataset import vision
    >>> train, test = vision.digits_dataset(None, 64, 256, num_workers=0, seed=0)
    >>> x, y = next(iter(train))
    >>> tuple(x.shape), len(train), len(test.dataset)
    ((64, 1, 8, 8), 22, 360)
"""

import torch
from torch.utils.data import DataLoader

from ._common import DatasetNotFoundError, loader_functions

__all__ = [
    "mnist_dataset",
    "Fmnist_dataset",
    "cifar10_dataset",
    "cifar100_dataset",
    "digits_dataset",
    "DatasetNotFoundError",
]


def _loaders(req):
    train_set, test_set = req.datasets()
    generator = torch.Generator().manual_seed(req.seed) if req.seed is not None else None
    opts = req.loader_options
    train = DataLoader(
        train_set,
        batch_size=req.batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        **opts,
    )
    test = DataLoader(
        test_set, batch_size=req.test_batch_size, shuffle=False, drop_last=False, **opts
    )
    return train, test


_functions = loader_functions(
    _loaders,
    "{name} (train_loader, test_loader); see the module docstring. "
    "transforms=[train_tf, test_tf] replaces the defaults.",
    default_seed=None,
)
mnist_dataset = _functions["mnist_dataset"]
Fmnist_dataset = _functions["Fmnist_dataset"]
cifar10_dataset = _functions["cifar10_dataset"]
cifar100_dataset = _functions["cifar100_dataset"]
digits_dataset = _functions["digits_dataset"]
