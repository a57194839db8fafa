r"""How each dataset's files are read: the ``reader`` of its
:class:`~snetx.dataset.registry.DatasetSpec`.

A reader opens a dataset's splits from ``data_dir``: ``open(data_dir, splits, download,
transforms)`` returns ``{split: dataset}`` for the requested splits (``"train"``,
``"valid"``, ``"test"``). Image readers give torchvision-style datasets of transformed
images; event readers give tonic datasets of raw events (with integer ``targets``, in
path order), which :mod:`snetx.dataset.loaders` turns into frames.

Nothing here imports torch, torchvision or tonic until a dataset is opened.
"""

import os
from pathlib import Path
from typing import Tuple

from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError

__all__ = ["Torchvision", "Digits", "Tonic", "fixed_split", "SPLITS"]

SPLITS = ("train", "valid", "test")


def fixed_split(targets, fraction):
    """(first indices, rest indices): per class, the first ``floor(fraction * n)`` samples
    in the given (sorted) order, then the rest -- the same on every run and machine."""
    first, rest = [], []
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label]
        cut = int(len(members) * fraction + 1e-9)
        first += members[:cut]
        rest += members[cut:]
    return sorted(first), sorted(rest)


class Subset:
    """Some samples of a dataset, with their labels as ``targets``."""

    def __init__(self, source, indices):
        self.source, self.indices = source, list(indices)
        self.targets = [source.targets[i] for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.source[self.indices[i]]


def _unknown_splits(name, splits, known):
    bad = [s for s in splits if s not in known]
    if bad:
        raise ValueError(
            f"{name} has no {'/'.join(bad)} split (it has {', '.join(known)})"
        )


# ---- images --------------------------------------------------------------------------


class Torchvision:
    """A torchvision dataset class with ``train=True/False`` (MNIST, CIFAR, ...)."""

    splits = ("train", "test")

    def __init__(self, cls_name, subfolder=None, idx=False):
        self.cls_name, self.subfolder, self.idx = cls_name, subfolder, idx

    def open(self, spec, data_dir, splits, download, transforms):
        from torchvision import datasets

        from ._common import check_mnist_files

        _unknown_splits(spec.name, splits, self.splits)
        data_dir = os.fspath(data_dir)
        if self.idx:
            check_mnist_files(spec.name, data_dir)
        root = os.path.join(data_dir, self.subfolder) if self.subfolder else data_dir
        cls = getattr(datasets, self.cls_name)
        try:
            return {
                s: cls(root, train=s == "train", transform=transforms[s], download=download)
                for s in splits
            }
        except (RuntimeError, OSError) as e:
            where = Path(data_dir, spec.folder)
            how = "could not be downloaded" if download else "download=False"
            raise DatasetNotFoundError(
                f"{spec.name} not found in {where} ({how}). Expected files there: "
                f"{', '.join(spec.files)}{' (or their .gz archives)' if self.idx else ''}. "
                f"Cause: {type(e).__name__}: {e}"
            ) from e


class Digits:
    """scikit-learn's bundled digits: no files, no download."""

    splits = ("train", "test")

    def open(self, spec, data_dir, splits, download, transforms):
        from ._common import Digits as DigitsSet

        _unknown_splits(spec.name, splits, self.splits)
        return {s: DigitsSet(s == "train", transforms[s]) for s in splits}


# ---- events (tonic) --------------------------------------------------------------------


def _tonic():
    try:
        import tonic  # noqa: F401
    except ImportError as e:
        from snetx import install_hint

        raise ImportError(
            "snetx.dataset.neuromorphic reads datasets with tonic: "
            + install_hint("snetx-vision", "neuromorphic")
        ) from e
    import tonic.datasets

    return tonic.datasets


def _in_path_order(source):
    """Sort a file-per-sample tonic dataset by path (its own listing follows the file
    system's order), so that sample i is the same file on every machine and run."""
    data = getattr(source, "data", None)
    if data and len(data) == len(source):
        order = sorted(range(len(data)), key=lambda i: data[i])
        for field in ("data", "targets", "users", "lighting"):
            values = getattr(source, field, None)
            if values is not None and len(values) == len(order):
                setattr(source, field, [values[i] for i in order])
    return source


def _hdf5_labels(source):
    """The ``labels`` array of a one-file HDF5 split, read without its spikes."""
    import h5py

    path = Path(source.location_on_system, source.data_filename)
    try:
        with h5py.File(path, "r") as f:
            return [int(t) for t in f["labels"][()]]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetCorruptError(
            f"{path} cannot be read as a Heidelberg spike file (HDF5 with spikes/times, "
            f"spikes/units and labels): {type(e).__name__}: {e}"
        ) from None


class Tonic:
    """A tonic dataset class that accepts the extracted files alone (no archive) and
    downloads only when allowed.

    Args:
        cls_name: the tonic class (``"NMNIST"``, ``"SSC"``, ...).
        expected: the files expected under ``data_dir/<cls_name>``, in words.
        extension: the extension of its data files (for "is it there").
        split_by: how tonic names the splits: ``"train"`` (a ``train=`` flag), ``"split"``
            (a ``split=`` name, with ``"valid"``) or ``None`` (one set that snetx splits
            per class, in sorted file order: :attr:`test_fraction` of each class tests).
        valid_fraction: where tonic has no validation split, the last ``valid_fraction``
            of each class of the training split (file order) validates (None: no valid).
        test_fraction: for ``split_by=None``, the share of each class that tests.
        folder_labels: the targets are folder names (N-Caltech101): they become the index
            of the name among the sorted folder names.
    """

    def __init__(self, cls_name, expected, extension, split_by="train", valid_fraction=None,
                 test_fraction=0.1, folder_labels=False):  # fmt: skip
        self.cls_name, self.expected, self.extension = cls_name, expected, extension
        self.split_by, self.valid_fraction = split_by, valid_fraction
        self.test_fraction, self.folder_labels = test_fraction, folder_labels

    @property
    def splits(self) -> Tuple[str, ...]:
        if self.split_by == "split" or self.valid_fraction is not None:
            return SPLITS
        return ("train", "test")

    def _source(self, data_dir, download, **split):
        """The tonic dataset for one split (``train=``/``split=``) or the whole set."""
        base = getattr(_tonic(), self.cls_name)
        name, expected, extension = self.cls_name, self.expected, self.extension

        class Source(base):
            def _check_exists(self):
                data = getattr(self, "data_filename", None)  # one file per split (SHD, SSC)
                if isinstance(data, str) and data.endswith(".h5"):
                    return Path(self.location_on_system, data).is_file()
                folder = Path(self.location_on_system, self.folder_name)
                return any(folder.rglob(f"*{extension}"))

            def download(self):
                if not download:
                    raise DatasetNotFoundError(
                        f"{name} not found in {self.location_on_system} (download=False). "
                        f"Expected there: {expected}; tonic can download it with download=True"
                    )
                return super().download()

        Source.__name__ = name
        try:
            source = Source(os.fspath(data_dir), **split)
        except DatasetError:
            raise
        except Exception as e:  # a failed download, an unreadable file
            folder = Path(data_dir, name)
            if folder.is_dir() and any(folder.rglob(f"*{extension}")):  # there, but damaged
                raise DatasetCorruptError(
                    f"{name} in {folder} cannot be read: {type(e).__name__}: {e}. Expected "
                    f"there: {expected}"
                ) from None
            raise DatasetNotFoundError(
                f"{name} could not be read or downloaded into {folder}. Expected there: "
                f"{expected}. Cause: {type(e).__name__}: {e}"
            ) from e
        source = _in_path_order(source)
        if getattr(source, "targets", None) is None or len(source.targets) != len(source):
            source.targets = _hdf5_labels(source)  # one HDF5 file per split (SHD, SSC)
        if self.folder_labels:
            names = sorted(set(source.targets))
            source.targets = [names.index(t) for t in source.targets]
            source.class_names = names
        return source

    def _fixed(self, data_dir, whole, fraction, what):
        parts = fixed_split(whole.targets, 1.0 - fraction)
        if not all(parts):
            raise DatasetCorruptError(
                f"{self.cls_name} in {Path(data_dir, self.cls_name)} has too few samples "
                f"({len(whole)}) for its fixed per-class split ({fraction:.0%} {what}): it "
                f"leaves {len(parts[0])} and {len(parts[1])}; every class needs at least "
                f"{int(1 / fraction + 0.5)} files"
            )
        return [Subset(whole, part) for part in parts]

    def open(self, spec, data_dir, splits, download, transforms=None):
        _unknown_splits(spec.name, splits, self.splits)
        out = {}
        if self.split_by is None:  # one set: a fixed per-class split
            whole = self._source(data_dir, download)
            out["train"], out["test"] = self._fixed(data_dir, whole, self.test_fraction, "test")
        elif self.split_by == "split":
            for s in splits:
                out[s] = self._source(data_dir, download, split=s)
        else:
            if "train" in splits or "valid" in splits:
                out["train"] = self._source(data_dir, download, train=True)
            if "test" in splits:
                out["test"] = self._source(data_dir, download, train=False)
        if "valid" in splits and "valid" not in out:  # carved from the training split
            out["train"], out["valid"] = self._fixed(
                data_dir, out["train"], self.valid_fraction, "valid"
            )
        return {s: out[s] for s in splits}

