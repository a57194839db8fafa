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
    >>> registry.get("ssc").splits
    ('train', 'valid', 'test')
    >>> registry.get("cifar10dvs").default_T, registry.get("cifar10dvs").default_size
    (10, 48)
"""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Optional, Tuple

from .readers import Digits, Tonic, Torchvision

__all__ = ["DatasetSpec", "DATASETS", "get", "names"]

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything about one dataset: the loaders (:mod:`snetx.dataset.loaders`), the
    public ``*_dataset`` functions, the documentation and ``snetx-train`` read it here.

    Args:
        name: the key (``--dataset`` of snetx-train).
        loader: the name of its public ``*_dataset`` function.
        channels, size, classes: one sample is ``channels x size[0] x size[1]`` (or ``T x
            channels`` features for spike sequences), labels are ``0 .. classes - 1``.
        train_size: samples in the training split.
        mean, std: per-channel statistics the default image transforms normalize with.
        folder: where the files live under ``data_dir`` (None: bundled, no files).
        files: the file names expected in ``folder``.
        augmentation: the default training augmentation, ``"affine"`` (MNIST-like),
            ``"crop-flip-cutout"`` (CIFAR) or ``"none"``.
        kind: ``"image"`` (static: repeated over T by a direct encoder), ``"events"``
            (event-camera frames ``T x 2 x H x W``) or ``"sequence"`` (``T x F``).
        module: the public module of its loader (``vision`` or ``neuromorphic``, and the
            same under ``snetx.dataset.ddp``).
        default_T: time steps snetx-train uses when ``--T`` is not given.
        default_size: the frame size snetx-train resizes events to by default (None: the
            sensor's).
        source: where the defaults come from (paper or common practice).
        reader: how its files are read (:mod:`snetx.dataset.readers`); its ``splits`` are
            the splits it has (``train``, ``test``, and ``valid`` where there is one).
        sensor: events and spike sequences: tonic's sensor size ``(W, H, P)``.
        doc: the loader's description (source, licence, size, files, split).
        default_epochs: snetx-train's ``--epochs`` when not given.
        default_workers: snetx-train's ``--workers`` when not given (None: the loaders').
        default_model: snetx-train's ``--model`` when not given.
        default_lr: snetx-train's Adam ``--lr`` when not given (None: 3e-3).
    """

    name: str
    loader: str
    channels: int
    size: Tuple[int, ...]
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
    reader: object = None
    sensor: Optional[Tuple[int, int, int]] = None
    doc: str = ""
    default_epochs: int = 20
    default_workers: Optional[int] = None
    default_model: str = "scnn"
    default_lr: Optional[float] = None

    @property
    def splits(self) -> Tuple[str, ...]:
        return tuple(self.reader.splits)


_IMAGE_DOC = (
    "{title} (torchvision's format under ``data_dir/{folder}``) -> batches ``N x {shape}``; "
    "``transforms=[train_tf, test_tf]`` replaces the defaults."
)


def _image(name, loader, channels, size, classes, train_size, mean, std, folder, files,
           augmentation, reader, title, **kw):  # fmt: skip
    shape = f"{channels} x {size[0]} x {size[1]}"
    doc = _IMAGE_DOC.format(title=title, folder=folder, shape=shape)
    return DatasetSpec(name, loader, channels, size, classes, train_size, mean, std, folder,
                       files, augmentation, reader=reader, doc=doc, **kw)  # fmt: skip


DATASETS = MappingProxyType(
    {
        s.name: s
        for s in (
            _image(
                "mnist", "mnist_dataset", 1, (28, 28), 10, 60000, (0.1307,), (0.3081,),
                "MNIST/raw", _MNIST_FILES, "affine", Torchvision("MNIST", idx=True), "MNIST",
                # 10 epochs on a real 4,000 / 1,000 MNIST subset (benchmarks/mnist_subset.py):
                # 98.3% / 98.4% (seeds 0, 1) at 5e-3, 98.0% at 3e-3
                default_lr=5e-3,
            ),
            _image(
                "fmnist", "Fmnist_dataset", 1, (28, 28), 10, 60000, (0.2860,), (0.3530,),
                "FashionMNIST/raw", _MNIST_FILES, "affine",
                Torchvision("FashionMNIST", idx=True), "Fashion-MNIST",
            ),
            _image(
                "cifar10", "cifar10_dataset", 3, (32, 32), 10, 50000,
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                "CIFAR10/cifar-10-batches-py",
                (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
                "crop-flip-cutout", Torchvision("CIFAR10", "CIFAR10"), "CIFAR-10",
            ),
            _image(
                "cifar100", "cifar100_dataset", 3, (32, 32), 100, 50000,
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                "CIFAR100/cifar-100-python", ("train", "test", "meta"), "crop-flip-cutout",
                Torchvision("CIFAR100", "CIFAR100"), "CIFAR-100",
            ),
            # scikit-learn's bundled digits scaled to [0, 1]; no files, no download
            DatasetSpec(
                "digits", "digits_dataset", 1, (8, 8), 10, 1437,
                (0.3052,), (0.3776,), None, (), "none", reader=Digits(),
                doc="scikit-learn's bundled handwritten digits (1,797 images, 8 x 8; 1,437 "
                "train, 360 test, a fixed permutation) -> batches ``N x 1 x 8 x 8``; offline.",
                default_epochs=15, default_workers=0,
            ),
            # event datasets (snetx.dataset.neuromorphic): frames of event counts
            DatasetSpec(
                "nmnist", "nmnist_dataset", 2, (34, 34), 10, 60000, (), (), "NMNIST",
                ("Train/<digit>/*.bin", "Test/<digit>/*.bin"), "none", "events",
                "neuromorphic", 10, None, "T = 10 as in SpikingJelly's N-MNIST examples",
                reader=Tonic("NMNIST", "Train/<digit>/*.bin and Test/<digit>/*.bin", ".bin"),
                sensor=(34, 34, 2),
                doc="N-MNIST (Orchard et al., 2015; CC BY-SA 4.0): 60,000 / 10,000 saccade "
                "recordings of MNIST digits, 34 x 34, 2 polarities -> batches "
                "``N x T x 2 x 34 x 34``. Files: ``data_dir/NMNIST/Train/<digit>/*.bin``, "
                "``.../Test/<digit>/*.bin``.",
            ),
            DatasetSpec(
                "dvsgesture", "dvs_gesture_dataset", 2, (128, 128), 11, 1077, (), (),
                "DVSGesture", ("ibmGestureTrain/userNN_<lighting>/<label>.npy",
                               "ibmGestureTest/userNN_<lighting>/<label>.npy"),
                "none", "events", "neuromorphic", 16, 128,
                "T = 16, 128 x 128 as in Fang et al. (PLIF, ICCV 2021; SEW-ResNet, 2021)",
                reader=Tonic(
                    "DVSGesture",
                    "ibmGestureTrain/userNN_<lighting>/<label>.npy and ibmGestureTest/...",
                    ".npy",
                ),
                sensor=(128, 128, 2),
                doc="DVS128 Gesture (Amir et al., CVPR 2017; CC BY 4.0), tonic's preprocessed "
                "version: 1,077 / 264 recordings of 11 gestures, 128 x 128, 2 polarities -> "
                "batches ``N x T x 2 x 128 x 128`` (``size`` to shrink). Files: "
                "``data_dir/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy``, "
                "``.../ibmGestureTest/...``.",
            ),
            DatasetSpec(
                "cifar10dvs", "cifar10_dvs_dataset", 2, (128, 128), 10, 9000, (), (),
                "CIFAR10DVS", ("<class>/*.aedat4",), "none", "events", "neuromorphic", 10, 48,
                "T = 10, 48 x 48 as in the TET paper (Deng et al., ICLR 2022)",
                reader=Tonic("CIFAR10DVS", "<class>/*.aedat4 (10 class folders)", ".aedat4",
                             split_by=None, test_fraction=0.1),  # fmt: skip
                sensor=(128, 128, 2),
                doc="CIFAR10-DVS (Li et al., 2017; CC BY 4.0): 10,000 recordings of CIFAR-10 "
                "images, 128 x 128, 2 polarities -> batches ``N x T x 2 x 128 x 128`` "
                "(``size=(48, 48)`` as in the TET paper). There is no official split, and "
                "papers differ (some report on overlapping or reshuffled splits, which "
                "inflates numbers); snetx fixes it: per class the first 90% of the files in "
                "sorted path order train, the rest test (900 / 100 per class, "
                ":func:`~snetx.dataset.readers.fixed_split`). Files: "
                "``data_dir/CIFAR10DVS/<class>/*.aedat4``.",
            ),
            DatasetSpec(
                "ncaltech101", "ncaltech101_dataset", 2, (180, 240), 101, 7419, (), (),
                "NCALTECH101", ("Caltech101/<class>/*.bin",), "none", "events",
                "neuromorphic", 10, 48,
                "T = 10, 48 x 48 as in NDA (Li et al., ECCV 2022)",
                reader=Tonic("NCALTECH101", "Caltech101/<class>/*.bin (101 class folders)",
                             ".bin", split_by=None, test_fraction=0.1,
                             folder_labels=True),  # fmt: skip
                sensor=(240, 180, 2),
                doc="N-Caltech101 (Orchard et al., 2015; CC BY 4.0): 8,246 saccade "
                "recordings of Caltech101 images in 101 classes (100 objects and background), "
                "up to 240 x 180, 2 polarities, coordinates from each recording's corner -> "
                "batches ``N x T x 2 x 180 x 240`` (``size`` to shrink). No official split: "
                "per class (sorted folder names are the labels) the first 90% of the files "
                "in sorted order train, the rest test. Files: "
                "``data_dir/NCALTECH101/Caltech101/<class>/image_NNNN.bin``.",
            ),
            DatasetSpec(
                "shd", "shd_dataset", 700, (700,), 20, 8156, (), (), "SHD",
                ("shd_train.h5", "shd_test.h5"), "none", "sequence", "neuromorphic", 100, None,
                "T = 100 bins (10 ms each for 1 s samples) as in Cramer et al. (2020)",
                reader=Tonic("SHD", "shd_train.h5 and shd_test.h5", ".h5", valid_fraction=0.1),
                sensor=(700, 1, 1), default_model="smlp",
                doc="Spiking Heidelberg Digits (Cramer et al., 2020; CC BY 4.0): 8,156 / 2,264 "
                "spoken digits (20 classes) as spikes of 700 cochlea channels -> batches "
                "``N x T x 700``. Validation (``validation=True``): the last 10% of each "
                "class of the training file. Files: ``data_dir/SHD/shd_train.h5``, "
                "``data_dir/SHD/shd_test.h5``.",
            ),
            DatasetSpec(
                "ssc", "ssc_dataset", 700, (700,), 35, 75466, (), (), "SSC",
                ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"), "none", "sequence",
                "neuromorphic", 100, None,
                "T = 100 bins (10 ms each for 1 s samples) as in Cramer et al. (2020)",
                reader=Tonic("SSC", "ssc_train.h5, ssc_valid.h5 and ssc_test.h5", ".h5",
                             split_by="split"),  # fmt: skip
                sensor=(700, 1, 1), default_model="smlp",
                doc="Spiking Speech Commands (Cramer et al., 2020; CC BY 4.0): 75,466 / 9,981 "
                "/ 20,382 spoken commands (35 classes) as spikes of 700 cochlea channels -> "
                "batches ``N x T x 700``; its own train / valid / test files "
                "(``validation=True`` for the valid one). Files: "
                "``data_dir/SSC/ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``.",
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
