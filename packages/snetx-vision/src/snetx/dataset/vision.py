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

from .errors import DatasetNotFoundError
from .loaders import public_functions

_functions = public_functions("vision")
globals().update(_functions)

__all__ = [*_functions, "DatasetNotFoundError"]
