r"""Neuromorphic datasets as frames ``N x T x ...``, read with tonic (``pip install
'snetx-vision[neuromorphic]'``).

N-MNIST, DVS128 Gesture and CIFAR10-DVS (event cameras, ``N x T x 2 x H x W``) and the
Spiking Heidelberg Digits (spiking audio, ``N x T x 700``). Each loader function is
``(data_dir, batch_size, test_batch_size, T, transforms=None, *, download=True,
num_workers=None, pin_memory=None, seed=None, split_by="number", size=None,
cache_dir=None) -> (train_loader, test_loader)``.

Files. ``data_dir`` holds each dataset in the layout tonic's dataset classes use after
download and extraction (``data_dir/NMNIST/Train/<digit>/*.bin``, ``data_dir/SHD/shd_train.h5``):
a folder tonic downloaded works as it is. With the extracted files present the archives
(and their checksums) are not needed; when they are missing, ``download=True`` lets tonic
fetch them, else :class:`~snetx.dataset.DatasetNotFoundError` says where to put which files.

Frames. :func:`integrate` turns one sample's events into ``T`` frames of event counts per
polarity (cameras) or per unit (audio). ``split_by="number"`` gives bins of equal event
count, the common choice for DVS benchmarks (as SpikingJelly's ``frames_number`` /
``split_by="number"``); the remainder of a count that is not a multiple of ``T`` goes to
the last bin, so no event is lost. ``split_by="time"`` gives bins of equal duration over the
sample's span. ``size=(h, w)`` scales event coordinates (``x * w // W``), so every event
still lands in a pixel and the counts still sum to the sample's event count.

Cache. Frames are computed once and stored under ``cache_dir`` (default: a private
per-user cache, ``$SNETX_CACHE_DIR/frames`` or ``~/.cache/snetx/frames``, never inside
the data folder, which may be read-only), in a folder keyed by the dataset, split, ``T``,
``split_by`` and ``size``: a changed setting never reuses a stale cache. Each entry
records the content hash of the file it was computed from; an entry that is not this
user's private regular file, has the wrong shape or dtype, holds non-finite values or
whose source file changed is recomputed, with one warning. The first pass over a split
fills the cache through the loader's workers, with a progress bar.

Damaged files. Every file is checked as it is read: a file that cannot be parsed, events
outside the sensor (negative or too large coordinates, units or polarities) and labels
outside the classes raise :class:`~snetx.dataset.DatasetCorruptError` naming the file,
the sample and the field.

Example::

    >>> import numpy as np
    >>> from snetx.dataset.neuromorphic import integrate
    >>> ev = np.zeros(183, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    >>> ev["t"] = np.arange(183)
    >>> frames = integrate(ev, (34, 34, 2), T=4)
    >>> frames.shape, frames.sum(axis=(1, 2, 3)).tolist()   # 45 per bin, the last gets 3 more
    ((4, 2, 34, 34), [45.0, 45.0, 45.0, 48.0])
"""

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._common import DatasetCorruptError, DatasetError, DatasetNotFoundError, loader_options
from ._frame_cache import FrameCache

__all__ = [
    "integrate",
    "fixed_split",
    "FrameDataset",
    "nmnist_dataset",
    "dvs_gesture_dataset",
    "cifar10_dvs_dataset",
    "shd_dataset",
    "SPLIT_BY",
]

SPLIT_BY = ("number", "time")
FORMAT = 1  # bump when the frame layout changes: old cache folders are then not reused


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


def _bins(events, T, split_by):
    """The time bin (0 .. T-1) of every event."""
    n = len(events)
    if split_by == "number":
        per = n // T
        if per == 0:  # fewer events than bins: all in the last one, as the remainder rule
            return np.full(n, T - 1, dtype=np.int64)
        return np.minimum(np.arange(n) // per, T - 1)
    t = events["t"].astype(np.float64)
    t0, span = t.min(), t.max() - t.min()
    if span <= 0:
        return np.zeros(n, dtype=np.int64)
    return np.minimum(((t - t0) * T / span).astype(np.int64), T - 1)


def integrate(events, sensor_size, T, split_by="number", size=None):
    """``T`` frames of event counts (float32) from a structured event array (tonic's
    format: fields ``x``, ``t``, ``p`` and, for cameras, ``y``; events in time order).

    ``sensor_size`` is tonic's ``(W, H, P)``; cameras give ``T x P x H x W`` (``size``
    ``(h, w)`` scales coordinates), 1-row sensors (audio) give ``T x W``.
    """
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an int >= 1, got {T!r}")
    width, height, polarities = sensor_size
    events = np.asarray(events)
    bins = _bins(events, T, split_by) if len(events) else np.zeros(0, dtype=np.int64)
    x = events["x"].astype(np.int64)
    if height == 1 and "y" not in events.dtype.names:  # audio: one count per unit
        frames = np.zeros((T, width), dtype=np.float32)
        np.add.at(frames, (bins, x), 1)
        return frames
    y = events["y"].astype(np.int64)
    p = (events["p"].astype(np.int64) > 0).astype(np.int64) if polarities == 2 else 0 * x
    h, w = (height, width) if size is None else size
    if size is not None:
        x, y = x * w // width, y * h // height
    frames = np.zeros((T, polarities, h, w), dtype=np.float32)
    np.add.at(frames, (bins, p, y, x), 1)
    return frames


class FrameDataset(Dataset):
    """Frames of a tonic dataset, cached on disk (see the module doc). Items are
    ``(frames float32 tensor, label int)``; ``transform`` applies to the frames tensor.
    ``classes``: labels must be ``0 .. classes - 1`` (checked before any frame is
    computed); every sample's events are checked against ``sensor_size`` when read."""

    def __init__(
        self, source, sensor_size, T, split_by, size, cache_root, key, transform=None,
        classes=None,
    ):  # fmt: skip
        self.source, self.sensor_size = source, sensor_size
        self.T, self.split_by, self.size, self.transform = T, split_by, size, transform
        settings = {
            "key": key, "T": T, "split_by": split_by, "size": size, "format": FORMAT,
            "samples": len(source), "files": _files_digest(source),
        }  # fmt: skip
        self.frame_cache = FrameCache(cache_root, f"{key}-T{T}-{split_by}", settings, self._shape())
        self.cache = self.frame_cache.folder
        self.labels = _labels(source)
        if classes is not None:
            for i, label in enumerate(self.labels):
                if not 0 <= label < classes:
                    raise DatasetCorruptError(
                        f"{sample_file(source, i)}: sample {i} has label {label}, outside "
                        f"0..{classes - 1}"
                    )

    def __len__(self):
        return len(self.source)

    def _shape(self):
        w, h, p = self.sensor_size
        if h == 1:
            return (self.T, w)
        hw = (h, w) if self.size is None else tuple(self.size)
        return (self.T, p, *hw)

    def frames(self, i):
        path = sample_file(self.source, i)
        frames = self.frame_cache.get(i, path)
        if frames is not None:
            return frames
        events = read_events(self.source, i, self.sensor_size)
        frames = integrate(events, self.sensor_size, self.T, self.split_by, self.size)
        self.frame_cache.put(i, frames, path)
        return frames

    def __getitem__(self, i):
        x = torch.from_numpy(self.frames(i))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    def prepare(self, num_workers=0):
        """Fill the cache for every sample (in the loader workers), with a progress bar."""
        if self.cache is None:
            return  # no private cache folder: frames are computed when read
        missing = [i for i in range(len(self)) if not self.frame_cache.has(i)]
        if not missing:
            return
        from tqdm import tqdm

        loader = DataLoader(
            _Indices(self, missing), batch_size=None, num_workers=num_workers, shuffle=False
        )
        bar = tqdm(
            loader, total=len(missing), desc=f"frames {self.cache.name}", leave=False, disable=None
        )  # fmt: skip  (None: no bar when stderr is not a terminal)
        for _ in bar:
            pass


def sample_file(source, i):
    """The file sample ``i`` is read from (its own file, or the split's one HDF5 file)."""
    base = getattr(source, "source", source)
    index = source.indices[i] if hasattr(source, "indices") else i
    data = getattr(base, "data", None)
    if data and len(data) == len(base):
        return Path(data[index])
    return Path(base.location_on_system, base.data_filename)


def read_events(source, i, sensor_size):
    """Sample ``i``'s events, checked: DatasetCorruptError naming the file, the sample and
    the fault for a file that cannot be read or events outside the sensor."""
    path = sample_file(source, i)
    if path.suffix == ".bin" and path.stat().st_size % 5:  # N-MNIST's 5-byte events
        raise DatasetCorruptError(
            f"{path}: sample {i} is truncated ({path.stat().st_size} bytes, not a whole "
            "number of 5-byte events)"
        )
    try:
        events, _ = source[i]
    except DatasetError:
        raise
    except ValueError as e:
        if not (path.suffix == ".aedat4" and "need at least one array" in str(e)):
            raise _unreadable(path, i, e) from None
        # tonic's AEDAT4 reader concatenates the file's event packets: a recording with
        # none is an empty sample, as in the other formats, not a damaged file
        base = getattr(source, "source", source)
        events = np.zeros(0, dtype=base.dtype)
    except Exception as e:  # each reader fails in its own way on a damaged file
        raise _unreadable(path, i, e) from None
    check_events(events, sensor_size, f"{path}: sample {i}")
    return events


def _unreadable(path, i, e):
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return DatasetCorruptError(
        f"{path}: sample {i} cannot be read ({type(e).__name__}{': ' + first if first else ''})"
    )


def check_events(events, sensor_size, where):
    """DatasetCorruptError unless every event lies on the sensor ``(W, H, P)``: a
    coordinate or unit that is negative or too large would wrap or be dropped."""
    events = np.asarray(events)
    names = events.dtype.names or ()
    width, height, polarities = sensor_size
    audio = height == 1 and "y" not in names
    needed = ("x", "t") if audio else ("x", "y", "t", "p")
    missing = [f for f in needed if f not in names]
    if missing:
        raise DatasetCorruptError(f"{where} has no event field {', '.join(missing)}")
    if not len(events):
        return
    limits = [("unit" if audio else "x", "x", width)] + ([] if audio else [("y", "y", height)])
    for label, field, limit in limits:
        values = events[field].astype(np.int64)
        bad = (values < 0) | (values >= limit)
        if bad.any():
            raise DatasetCorruptError(
                f"{where}: event {int(np.argmax(bad))} has {label} = {values[bad][0]}, outside "
                f"0..{limit - 1}"
            )
    if not audio and polarities == 2:
        p = events["p"].astype(np.int64)
        bad = (p < -1) | (p > 1)
        if bad.any():
            raise DatasetCorruptError(
                f"{where}: event {int(np.argmax(bad))} has polarity {p[bad][0]}, not 0/1 (or -1/1)"
            )
    t = events["t"]
    if np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():
        raise DatasetCorruptError(f"{where}: an event time is not finite")


def _labels(source):
    """Every sample's label without reading its events: tonic's ``targets`` list, or the
    ``labels`` array of a one-file HDF5 dataset (SHD)."""
    targets = getattr(source, "targets", None)
    if targets is not None and len(targets) == len(source):
        return [int(t) for t in targets]
    import h5py

    path = Path(source.location_on_system, source.data_filename)
    try:
        with h5py.File(path, "r") as f:
            return [int(t) for t in f["labels"][()]]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DatasetCorruptError(
            f"{path} cannot be read as an SHD file (HDF5 with spikes/times, spikes/units and "
            f"labels): {type(e).__name__}: {e}"
        ) from None


class _Indices(Dataset):
    def __init__(self, frames, indices):
        self.frames_ds, self.indices = frames, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        self.frames_ds.frames(self.indices[k])
        return 0


# ---- the datasets ---------------------------------------------------------------------


def _source(name, data_dir, train, download, expected):
    """tonic's dataset class for ``name``, with its file discovery and parsing, but which
    accepts the extracted files alone (no archive) and downloads only when allowed."""
    datasets = _tonic()
    base = getattr(datasets, name)

    class Source(base):
        def _check_exists(self):
            data = getattr(self, "data_filename", None)  # one file per split (SHD)
            if isinstance(data, str):
                return Path(self.location_on_system, data).is_file()
            folder = Path(self.location_on_system, self.folder_name)
            return any(folder.rglob(f"*{expected[1]}"))

        def download(self):
            if not download:
                raise DatasetNotFoundError(
                    f"{name} not found in {self.location_on_system} (download=False). "
                    f"Expected there: {expected[0]}; tonic can download it with download=True"
                )
            return super().download()

    Source.__name__ = name
    try:
        if train is None:  # one set, split by snetx (CIFAR10-DVS)
            return Source(os.fspath(data_dir))
        return Source(os.fspath(data_dir), train=train)
    except DatasetError:
        raise
    except Exception as e:  # a failed download, an unreadable file
        folder = Path(data_dir, name)
        if folder.is_dir() and any(folder.rglob(f"*{expected[1]}")):  # there, but damaged
            raise DatasetCorruptError(
                f"{name} in {folder} cannot be read: {type(e).__name__}: {e}. Expected "
                f"there: {expected[0]}"
            ) from None
        raise DatasetNotFoundError(
            f"{name} could not be read or downloaded into {Path(data_dir, name)}. "
            f"Expected there: {expected[0]}. Cause: {type(e).__name__}: {e}"
        ) from e


# key -> (tonic class, (expected files in words, extension), sensor size (W, H, P),
#         whether tonic has a train/test split)
SOURCES = {
    "nmnist": ("NMNIST", ("Train/<digit>/*.bin and Test/<digit>/*.bin", ".bin"), (34, 34, 2), True),
    "dvsgesture": (
        "DVSGesture",
        ("ibmGestureTrain/userNN_<lighting>/<label>.npy and ibmGestureTest/...", ".npy"),
        (128, 128, 2),
        True,
    ),
    "cifar10dvs": (
        "CIFAR10DVS",
        ("<class>/*.aedat4 (10 class folders)", ".aedat4"),
        (128, 128, 2),
        False,
    ),
    "shd": ("SHD", ("shd_train.h5 and shd_test.h5", ".h5"), (700, 1, 1), True),
}
#: the number of classes of each dataset (labels are 0 .. n - 1)
CLASSES = {"nmnist": 10, "dvsgesture": 11, "cifar10dvs": 10, "shd": 20}
#: CIFAR10-DVS has no official split: per class, the first floor(TRAIN_FRACTION * n) files in
#: sorted order train, the rest test (the same on every run and machine; 900 / 100 per class
#: for the full dataset).
TRAIN_FRACTION = 0.9


class _Subset:
    """Some samples of a tonic dataset, with their labels as ``targets``."""

    def __init__(self, source, indices):
        self.source, self.indices = source, list(indices)
        self.targets = [source.targets[i] for i in self.indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.source[self.indices[i]]


def fixed_split(targets, fraction=TRAIN_FRACTION):
    """(train indices, test indices): per class, the first ``fraction`` of the samples in
    the given (sorted) order train, the rest test."""
    train, test = [], []
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label]
        cut = int(len(members) * fraction + 1e-9)  # the first floor(fraction * n) train
        train += members[:cut]
        test += members[cut:]
    return sorted(train), sorted(test)


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


def _check_size(size, sensor):
    """``size`` None, or ``(h, w)`` of positive ints no larger than the sensor."""
    if size is None:
        return None
    width, height, _ = sensor
    if height == 1:
        raise ValueError("size applies to event-camera datasets, not to spike sequences")
    try:
        h, w = size
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(
            f"size must be (h, w) with 1 <= h <= {height} and 1 <= w <= {width} (the sensor), "
            f"got {size!r}"
        )
    return (h, w)


def _split_sources(key, data_dir, download):
    name, expected, _, has_split = SOURCES[key]
    if has_split:
        return [
            _in_path_order(_source(name, data_dir, train, download, expected))
            for train in (True, False)
        ]
    whole = _in_path_order(_source(name, data_dir, None, download, expected))
    parts = fixed_split(whole.targets)
    if not all(parts):
        raise DatasetCorruptError(
            f"{name} in {Path(data_dir, name)} has too few samples ({len(whole)} files): the "
            f"fixed per-class split ({TRAIN_FRACTION:.0%} train) leaves "
            f"{len(parts[0])} train and {len(parts[1])} test samples; every class needs at "
            f"least {int(1 / (1 - TRAIN_FRACTION) + 0.5)} files"
        )
    return [_Subset(whole, part) for part in parts]


def _files_digest(source):
    """Which files the samples are (paths and split indices): keys the cache folder. Each
    entry records its own file's content hash, so a changed file is caught per sample."""
    base = getattr(source, "source", source)
    files = getattr(base, "data", None) or [Path(base.location_on_system, base.data_filename)]
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f}|".encode())
    h.update(repr(getattr(source, "indices", None)).encode())
    return h.hexdigest()[:16]


def _loaders(
    key,
    data_dir,
    batch_size,
    test_batch_size,
    T,
    transforms,
    download,
    num_workers,
    pin_memory,
    seed,
    split_by,
    size,
    cache_dir,
    distributed=False,
):
    sensor = SOURCES[key][2]
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    size = _check_size(size, sensor)
    train_tf, test_tf = transforms if transforms is not None else (None, None)
    cache_root = None if cache_dir is None else Path(cache_dir)  # None: the per-user cache
    classes = CLASSES[key]
    opts = loader_options(num_workers, pin_memory, persistent_workers=False)

    def build(may_download, fill):
        sets = []
        sources = _split_sources(key, data_dir, may_download)
        for source, split, tf in zip(sources, ("train", "test"), (train_tf, test_tf)):
            name = f"{key}-{split}"
            frames = FrameDataset(source, sensor, T, split_by, size, cache_root, name, tf, classes)
            sets.append(frames)
        if fill:  # after both splits' labels are checked: a bad label costs no fill
            for frames in sets:
                frames.prepare(opts["num_workers"])
        return sets

    if not distributed:
        train_set, test_set = build(download, True)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        train = DataLoader(
            train_set, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen, **opts
        )
        test = DataLoader(test_set, batch_size=test_batch_size, shuffle=False, **opts)
        return train, test
    import torch.distributed as dist
    from torch.utils.data import DistributedSampler

    from .ddp.vision import EpochLoader, ShardSampler, _require_process_group

    _require_process_group()
    # rank 0 downloads and fills the frame cache first; the others then read it
    if dist.get_rank() == 0:
        train_set, test_set = build(download, True)
        dist.barrier()
    else:
        dist.barrier()
        train_set, test_set = build(False, False)
    sampler = DistributedSampler(train_set, shuffle=True, seed=seed or 0, drop_last=True)
    train = EpochLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True, **opts)
    test = DataLoader(test_set, batch_size=test_batch_size, sampler=ShardSampler(test_set), **opts)
    return train, test


def _make(key, doc, distributed=False):
    def loader(
        data_dir,
        batch_size,
        test_batch_size,
        T,
        transforms=None,
        *,
        download=True,
        num_workers=None,
        pin_memory=None,
        seed=None,
        split_by="number",
        size=None,
        cache_dir=None,
    ):
        return _loaders(
            key, data_dir, batch_size, test_batch_size, T, transforms, download,
            num_workers, pin_memory, seed, split_by, size, cache_dir, distributed,
        )  # fmt: skip

    loader.__name__ = loader.__qualname__ = f"{key}_dataset"
    loader.__doc__ = doc
    return loader


#: One-line descriptions (source, licence, size, files) of each loader, by dataset key.
DOCS = {
    "nmnist": "N-MNIST (Orchard et al., 2015; CC BY-SA 4.0): 60,000 / 10,000 saccade "
    "recordings of MNIST digits, 34 x 34, 2 polarities -> batches ``N x T x 2 x 34 x 34``. "
    "Files: ``data_dir/NMNIST/Train/<digit>/*.bin``, ``.../Test/<digit>/*.bin``.",
    "dvsgesture": "DVS128 Gesture (Amir et al., CVPR 2017; CC BY 4.0), tonic's preprocessed "
    "version: 1,077 / 264 recordings of 11 gestures, 128 x 128, 2 polarities -> batches "
    "``N x T x 2 x 128 x 128`` (``size`` to shrink). Files: "
    "``data_dir/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy``, "
    "``.../ibmGestureTest/...``.",
    "cifar10dvs": "CIFAR10-DVS (Li et al., 2017; CC BY 4.0): 10,000 recordings of CIFAR-10 "
    "images, 128 x 128, 2 polarities -> batches ``N x T x 2 x 128 x 128`` (``size=(48, 48)`` "
    "as in the TET paper). No official split: per class the first 90% of the files in sorted "
    "order train, the rest test (:func:`fixed_split`). Files: "
    "``data_dir/CIFAR10DVS/<class>/*.aedat4``.",
    "shd": "Spiking Heidelberg Digits (Cramer et al., 2020; CC BY 4.0): 8,156 / 2,264 spoken "
    "digits (20 classes) as spikes of 700 cochlea channels -> batches ``N x T x 700``. "
    "Files: ``data_dir/SHD/shd_train.h5``, ``data_dir/SHD/shd_test.h5``.",
}
#: Public loader function names, by dataset key.
LOADER_NAMES = {
    "nmnist": "nmnist_dataset",
    "dvsgesture": "dvs_gesture_dataset",
    "cifar10dvs": "cifar10_dvs_dataset",
    "shd": "shd_dataset",
}


def loader_functions(distributed=False):
    """{public name: loader function} for every neuromorphic dataset."""
    return {name: _make(key, DOCS[key], distributed) for key, name in LOADER_NAMES.items()}


_functions = loader_functions()
nmnist_dataset = _functions["nmnist_dataset"]
dvs_gesture_dataset = _functions["dvs_gesture_dataset"]
cifar10_dvs_dataset = _functions["cifar10_dvs_dataset"]
shd_dataset = _functions["shd_dataset"]
