"""What every loader shares: the errors, IDX checks, default transforms, the bundled
digits set, the DataLoader options and iteration. Facts about each dataset live in
:mod:`snetx.dataset.registry` (imported lazily here: the registry's readers import this)."""

import contextlib
import math
import os
from pathlib import Path

import torch
from snetx import install_hint
from torch.utils.data import Dataset

from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetCorruptError",
    "check_idx",
    "Cutout",
    "default_transforms",
    "default_num_workers",
    "loader_options",
    "batches",
]


def _spec(name):
    from .registry import DATASETS

    return DATASETS[name]


# IDX (MNIST's format): magic 0 0 <type> <ndim>, ndim big-endian uint32 sizes, the data.
_IDX_TYPES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def check_idx(path, ndim):
    """The shape of the IDX file at ``path``; DatasetCorruptError when its header is not
    an IDX header of ``ndim`` dims or its size differs from what the header promises."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
        raise DatasetCorruptError(f"{path} is corrupted: not an IDX file (bad magic number)")
    if head[3] != ndim:
        raise DatasetCorruptError(
            f"{path} is corrupted: {head[3]} dims in the header, expected {ndim}"
        )
    if len(head) < 4 + 4 * ndim:
        raise DatasetCorruptError(f"{path} is corrupted: truncated inside the header")
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    want = 4 + 4 * ndim + math.prod(shape) * _IDX_TYPES[head[2]]
    if size != want:
        what = "truncated" if size < want else "longer than its header says"
        raise DatasetCorruptError(
            f"{path} is corrupted: {what} ({size} bytes; shape {shape} needs {want})"
        )
    return shape


def check_mnist_files(name, data_dir):
    """Validate the IDX files of an MNIST-like dataset that are on disk (the missing ones
    are torchvision's to download or report)."""
    raw, classes = Path(data_dir, _spec(name).folder), _spec(name).classes
    for split in ("train", "t10k"):
        images, labels = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
        if not (images.is_file() and labels.is_file()):
            continue
        n_images = check_idx(images, 3)[0]
        (n_labels,) = check_idx(labels, 1)
        if n_images != n_labels:
            raise DatasetCorruptError(
                f"{images} holds {n_images} images but {labels} holds {n_labels} labels"
            )
        with open(labels, "rb") as f:
            f.seek(8)
            values = f.read()
        if values and max(values) >= classes:
            raise DatasetCorruptError(
                f"{labels} is corrupted: label {max(values)} is outside 0..{classes - 1}"
            )


class Cutout:
    """Zero one random ``length x length`` square of a ``C x H x W`` tensor image
    (DeVries & Taylor, 2017); the square may be clipped at the border."""

    def __init__(self, length=16, generator=None):
        self.length = length
        self.generator = generator

    def __call__(self, img):
        h, w = img.shape[-2:]
        cy = int(torch.randint(h, (1,), generator=self.generator))
        cx = int(torch.randint(w, (1,), generator=self.generator))
        y0, y1 = max(0, cy - self.length // 2), min(h, cy + self.length // 2)
        x0, x1 = max(0, cx - self.length // 2), min(w, cx + self.length // 2)
        img = img.clone()
        img[..., y0:y1, x0:x1] = 0
        return img

    def __repr__(self):
        return f"Cutout(length={self.length})"


def default_transforms(name, autoaugment=False):
    """(train, test) transforms: MNIST-like get a light random affine (5 degrees, 5%
    shifts), CIFAR random crop with padding 4, horizontal flip and Cutout (with
    ``autoaugment``, AutoAugment's CIFAR10 policy after the flip: the TET paper's
    pipeline); all are normalized with the dataset's mean and std. ``digits`` images are
    tensors already (normalize only)."""
    from torchvision import transforms as T

    spec = _spec(name)
    norm = T.Normalize(spec.mean, spec.std)
    if spec.augmentation == "none":
        return norm, norm
    if spec.augmentation == "affine":
        # a light affine: 5 degrees, 5% shifts (10 degrees and 10% kept a 4,000-image MNIST
        # run underfitting: 97.6% training accuracy after 10 epochs)
        affine = T.RandomAffine(degrees=5, translate=(0.05, 0.05))
        train = T.Compose([affine, T.ToTensor(), norm])
        return train, T.Compose([T.ToTensor(), norm])
    policy = [T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)] if autoaugment else []
    train = T.Compose(
        [
            T.RandomCrop(spec.size, padding=4),
            T.RandomHorizontalFlip(),
            *policy,
            T.ToTensor(),
            norm,
            Cutout(16),
        ]
    )
    return train, T.Compose([T.ToTensor(), norm])


class Digits(Dataset):
    """scikit-learn's bundled handwritten digits (1,797 images, 8x8, no download) as
    ``1 x 8 x 8`` float tensors in [0, 1]. A fixed permutation (seed 0) splits them into
    1,437 train and 360 test images."""

    n_train = 1437

    def __init__(self, train=True, transform=None):
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError(
                "digits_dataset needs scikit-learn: " + install_hint("snetx-vision", "digits")
            ) from e
        data = load_digits()
        images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        targets = torch.tensor(data.target, dtype=torch.int64)
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))
        part = order[: self.n_train] if train else order[self.n_train :]
        self.data, self.targets = images[part], targets[part]
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = self.data[i]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i])


def default_num_workers():
    """Loader processes: a couple, but leave a core to the training process."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def loader_options(num_workers, pin_memory, persistent_workers=None):
    if num_workers is None:
        num_workers = default_num_workers()
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    opts = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0:
        opts["persistent_workers"] = True if persistent_workers is None else persistent_workers
    return opts


@contextlib.contextmanager
def batches(loader):
    """An iterator over ``loader`` whose worker processes are stopped, and waited for, when
    an exception leaves the loop. Without this a reference cycle through the exception's
    traceback keeps the iterator, and so its workers, alive after the command has
    returned, still reading and writing (a full disk's partial frame-cache entries).
    Persistent workers are kept when the loop ends normally."""
    it = iter(loader)
    try:
        yield it
    except BaseException:
        stop = getattr(it, "_shutdown_workers", None)  # torch's; single-process: absent
        if stop is not None:
            stop()
            if getattr(loader, "_iterator", None) is it:  # persistent: the next iter() anew
                loader._iterator = None
        raise
