r"""The datasets snetx knows, in one place: name -> :class:`DatasetSpec`.

Everything else (the loader functions of :mod:`snetx.dataset.vision` and
:mod:`snetx.dataset.ddp.vision`, the ``snetx-train`` command, the default transforms)
reads its facts from here, so a new dataset is one new entry (plus its reader).

Example::

    >>> from snetx.dataset import registry
    >>> spec = registry.get("cifar10")
    >>> spec.channels, spec.size, spec.classes, spec.loader
    (3, (32, 32), 10, 'cifar10_dataset')
    >>> sorted(registry.DATASETS)[:5]
    ['cifar10', 'cifar100', 'cifar10dvs', 'digits', 'dvsgesture']
    >>> registry.get("cifar10dvs").default_T, registry.get("cifar10dvs").default_size
    (10, 48)
"""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Optional, Tuple

__all__ = ["DatasetSpec", "DATASETS", "get", "names"]

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset.

    Args:
        name: the key (``--dataset`` of snetx-train).
        loader: the name of its ``*_dataset`` function in :mod:`snetx.dataset.vision`.
        channels, size, classes: one sample is ``channels x size[0] x size[1]``, labels
            are ``0 .. classes - 1``.
        train_size: images in the training split.
        mean, std: per-channel statistics the default transforms normalize with.
        folder: where the files live under ``data_dir`` (None: bundled, no files).
        files: the file names expected in ``folder``.
        augmentation: the default training augmentation, ``"affine"`` (MNIST-like),
            ``"crop-flip-cutout"`` (CIFAR) or ``"none"``.
        kind: ``"image"`` (static: repeated over T by a direct encoder), ``"events"``
            (event-camera frames ``T x 2 x H x W``) or ``"sequence"`` (``T x F``).
        module: the ``snetx.dataset`` module holding the loader (``vision`` or
            ``neuromorphic``; the same name under ``snetx.dataset.ddp``).
        default_T: time steps snetx-train uses when ``--T`` is not given.
        default_size: the frame size snetx-train resizes events to by default (None: the
            sensor's).
        source: where the defaults come from (paper or common practice).
    """

    name: str
    loader: str
    channels: int
    size: Tuple[int, int]
    classes: int
    train_size: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    folder: Optional[str]
    files: Tuple[str, ...]
    augmentation: str
    kind: str = "image"
    module: str = "vision"
    default_T: int = 4
    default_size: Optional[int] = None
    source: str = ""


DATASETS = MappingProxyType(
    {
        s.name: s
        for s in (
            DatasetSpec(
                "mnist", "mnist_dataset", 1, (28, 28), 10, 60000,
                (0.1307,), (0.3081,), "MNIST/raw", _MNIST_FILES, "affine",
            ),
            DatasetSpec(
                "fmnist", "Fmnist_dataset", 1, (28, 28), 10, 60000,
                (0.2860,), (0.3530,), "FashionMNIST/raw", _MNIST_FILES, "affine",
            ),
            DatasetSpec(
                "cifar10", "cifar10_dataset", 3, (32, 32), 10, 50000,
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                "CIFAR10/cifar-10-batches-py",
                (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
                "crop-flip-cutout",
            ),
            DatasetSpec(
                "cifar100", "cifar100_dataset", 3, (32, 32), 100, 50000,
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                "CIFAR100/cifar-100-python", ("train", "test", "meta"), "crop-flip-cutout",
            ),
            # scikit-learn's bundled digits scaled to [0, 1]; no files, no download
            DatasetSpec(
                "digits", "digits_dataset", 1, (8, 8), 10, 1437,
                (0.3052,), (0.3776,), None, (), "none",
            ),
            # event datasets (snetx.dataset.neuromorphic): frames of event counts
            DatasetSpec(
                "nmnist", "nmnist_dataset", 2, (34, 34), 10, 60000, (), (), "NMNIST",
                ("Train/<digit>/*.bin", "Test/<digit>/*.bin"), "none", "events",
                "neuromorphic", 10, None, "T = 10 as in SpikingJelly's N-MNIST examples",
            ),
            DatasetSpec(
                "dvsgesture", "dvs_gesture_dataset", 2, (128, 128), 11, 1077, (), (),
                "DVSGesture", ("ibmGestureTrain/userNN_<lighting>/<label>.npy",
                               "ibmGestureTest/userNN_<lighting>/<label>.npy"),
                "none", "events", "neuromorphic", 16, 128,
                "T = 16, 128 x 128 as in Fang et al. (PLIF, ICCV 2021; SEW-ResNet, 2021)",
            ),
            DatasetSpec(
                "cifar10dvs", "cifar10_dvs_dataset", 2, (128, 128), 10, 9000, (), (),
                "CIFAR10DVS", ("<class>/*.aedat4",), "none", "events", "neuromorphic", 10, 48,
                "T = 10, 48 x 48 as in the TET paper (Deng et al., ICLR 2022)",
            ),
            DatasetSpec(
                "shd", "shd_dataset", 700, (700,), 20, 8156, (), (), "SHD",
                ("shd_train.h5", "shd_test.h5"), "none", "sequence", "neuromorphic", 100, None,
                "T = 100 bins (10 ms each for 1 s samples) as in Cramer et al. (2020)",
            ),
        )
    }
)  # fmt: skip


def names():
    """The registered dataset names, in registration order."""
    return tuple(DATASETS)


def get(name: str) -> DatasetSpec:
    """The spec of ``name``; ValueError naming the known datasets when unknown."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}") from None
