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
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import readers as _readers
from . import registry as _registry
from ._common import batches
from ._frame_cache import FrameCache
from .errors import DatasetCorruptError, DatasetError
from .loaders import SPLIT_BY, public_functions

__all__ = [
    "integrate",
    "fixed_split",
    "FrameDataset",
    "read_events",
    "check_events",
    "sample_file",
    "SPLIT_BY",
    *(s.loader for s in _registry.DATASETS.values() if s.module == "neuromorphic"),
]

FORMAT = 2  # bump when the frame layout changes: old cache folders are then not reused
# (2: .npz entries recording their source's hash)


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
        with batches(loader) as it:
            bar = tqdm(
                it, total=len(missing), desc=f"frames {self.cache.name}", leave=False,
                disable=None,
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
    """Every sample's label without reading its events (the reader sets ``targets``)."""
    return [int(t) for t in source.targets]


class _Indices(Dataset):
    def __init__(self, frames, indices):
        self.frames_ds, self.indices = frames, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        self.frames_ds.frames(self.indices[k])
        return 0


# ---- the datasets ---------------------------------------------------------------------
#: CIFAR10-DVS (and N-Caltech101) have no official split: per class, the first
#: floor(TRAIN_FRACTION * n) files in sorted order train, the rest test (the same on every
#: run and machine; 900 / 100 per class for the full CIFAR10-DVS).
TRAIN_FRACTION = 0.9


def fixed_split(targets, fraction=TRAIN_FRACTION):
    """(train indices, test indices): per class, the first ``fraction`` of the samples in
    the given (sorted) order train, the rest test."""
    return _readers.fixed_split(targets, fraction)


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


_functions = public_functions("neuromorphic")
globals().update(_functions)
