r"""One loader factory for every dataset of :mod:`snetx.dataset.registry`, single process
or DDP, and the public ``*_dataset`` functions made from the specs.

:func:`make_loaders` reads everything from the dataset's spec: its reader (files, splits),
kind (images, event frames, spike sequences), sensor, transforms. Images come as
``N x C x H x W`` (repeat them over T with a direct encoder); event data as frames
``N x T x ...`` computed once and cached (:class:`~snetx.dataset.neuromorphic.FrameDataset`).
Under DDP (``distributed=True``, after ``torch.distributed.init_process_group``) the
train loader shards a shuffled permutation (the same on every rank) and reshuffles itself
each pass; evaluation loaders shard in order without padding, so metrics summed over
ranks count every sample once. Rank 0 reads (or downloads) the files and fills the frame
cache first; the other ranks then read them.

Example::

    >>> from snetx.dataset.loaders import make_loaders
    >>> train, test = make_loaders("digits", None, 64, 256, num_workers=0, seed=0)
    >>> x, y = next(iter(train))
    >>> tuple(x.shape), len(test.dataset)
    ((64, 1, 8, 8), 360)
"""

import functools
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from . import registry
from ._common import default_transforms, loader_options

__all__ = ["make_loaders", "public_functions", "EpochLoader", "ShardSampler", "SPLIT_BY"]

SPLIT_BY = ("number", "time")


class EpochLoader(DataLoader):
    """A DataLoader over a DistributedSampler that advances the sampler's epoch by itself
    at the start of every pass (``set_epoch(e)`` chooses the next one)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.next_epoch = int(epoch)

    def __iter__(self):
        self.sampler.set_epoch(self.next_epoch)
        self.next_epoch += 1
        return super().__iter__()


class ShardSampler(DistributedSampler):
    """In-order shard ``rank::world_size`` with no padding (for evaluation)."""

    def __init__(self, dataset, num_replicas=None, rank=None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))


def require_process_group():
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "the snetx.dataset.ddp loaders need an initialized process group: call "
            "torch.distributed.init_process_group(...) first (for example under torchrun), "
            "or use the single-process loaders (snetx.dataset.vision, "
            "snetx.dataset.neuromorphic)"
        )


def check_size(size, sensor):
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


def _transforms(spec, transforms, splits):
    """{split: transform}: ``transforms=[train_tf, eval_tf]`` or the spec's defaults
    (images) / none (frames); validation takes the evaluation transform."""
    if transforms is None:
        train, test = default_transforms(spec.name) if spec.kind == "image" else (None, None)
    else:
        if len(transforms) != 2:
            raise ValueError("transforms must be [train_transform, test_transform]")
        train, test = transforms
    return {s: train if s == "train" else test for s in splits}


def _open(spec, data_dir, splits, download, tfs, frames, fill, num_workers):
    """{split: dataset}: images transformed, or event data as cached frames."""
    if spec.kind == "image":
        return spec.reader.open(spec, data_dir, splits, download, tfs)
    from .neuromorphic import FrameDataset

    sources = spec.reader.open(spec, data_dir, splits, download)
    sets = {
        s: FrameDataset(
            sources[s], spec.sensor, frames["T"], frames["split_by"], frames["size"],
            frames["cache_dir"], f"{spec.name}-{s}", tfs[s], spec.classes,
        )
        for s in splits
    }  # fmt: skip  (labels of every split checked before any frame is computed)
    if fill:
        for s in splits:
            sets[s].prepare(num_workers)
    return sets


def make_loaders(
    dataset,
    data_dir,
    batch_size,
    test_batch_size,
    T=None,
    transforms=None,
    *,
    distributed=False,
    download=True,
    num_workers=None,
    pin_memory=None,
    seed=None,
    persistent_workers=None,
    split_by="number",
    size=None,
    cache_dir=None,
    validation=False,
):
    """``(train_loader, test_loader)``, or ``(train, valid, test)`` with ``validation``,
    for ``dataset`` (a registry name or :class:`~snetx.dataset.registry.DatasetSpec`).

    ``T``, ``split_by``, ``size`` (frames ``(h, w)``) and ``cache_dir`` apply to event and
    spike datasets; ``transforms=[train_tf, eval_tf]`` replaces the defaults. The train
    loader shuffles (from ``seed``) and drops its last partial batch; evaluation loaders
    do neither. ``persistent_workers`` defaults to True for images with workers, False for
    frames (fresh workers each epoch, seeded from the loader's generator)."""
    spec = registry.get(dataset) if isinstance(dataset, str) else dataset
    splits = ("train", "valid", "test") if validation else ("train", "test")
    if validation and "valid" not in spec.splits:
        have = [n for n, s in registry.DATASETS.items() if "valid" in s.splits]
        raise ValueError(f"{spec.name} has no validation split (these do: {', '.join(have)})")
    frames = None
    if spec.kind != "image":
        if split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an int >= 1, got {T!r}")
        frames = {
            "T": T, "split_by": split_by, "size": check_size(size, spec.sensor),
            "cache_dir": None if cache_dir is None else Path(cache_dir),
        }  # fmt: skip
        if persistent_workers is None:
            persistent_workers = False
    tfs = _transforms(spec, transforms, splits)
    opts = loader_options(num_workers, pin_memory, persistent_workers)
    open_sets = functools.partial(_open, spec, data_dir, splits, tfs=tfs, frames=frames,
                                  num_workers=opts["num_workers"])  # fmt: skip
    if not distributed:
        sets = open_sets(download=download, fill=True)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        train = DataLoader(sets["train"], batch_size=batch_size, shuffle=True, drop_last=True,
                           generator=gen, **opts)  # fmt: skip
        evals = [DataLoader(sets[s], batch_size=test_batch_size, shuffle=False, **opts)
                 for s in splits[1:]]  # fmt: skip
        return (train, *evals)
    import torch.distributed as dist

    require_process_group()
    # rank 0 downloads and fills the frame cache first; the others then read them
    if dist.get_rank() == 0:
        sets = open_sets(download=download, fill=True)
        dist.barrier()
    else:
        dist.barrier()
        sets = open_sets(download=False, fill=False)
    sampler = DistributedSampler(sets["train"], shuffle=True, seed=seed or 0, drop_last=True)
    train = EpochLoader(sets["train"], batch_size=batch_size, sampler=sampler, drop_last=True,
                        **opts)  # fmt: skip
    evals = [DataLoader(sets[s], batch_size=test_batch_size, sampler=ShardSampler(sets[s]),
                        **opts) for s in splits[1:]]  # fmt: skip
    return (train, *evals)


def _function(spec, distributed):
    """The public ``*_dataset`` function of ``spec``, with the signature of its kind."""
    where = "for this rank; batch_size is per process. " if distributed else ""
    if spec.kind == "image":

        def loader(data_dir, batch_size, test_batch_size, transforms=None, *, download=True,
                   num_workers=None, pin_memory=None, seed=None,
                   persistent_workers=None, validation=False):  # fmt: skip
            return make_loaders(
                spec, data_dir, batch_size, test_batch_size, None, transforms,
                distributed=distributed, download=download, num_workers=num_workers,
                pin_memory=pin_memory, seed=seed, persistent_workers=persistent_workers,
                validation=validation,
            )  # fmt: skip

    else:

        def loader(data_dir, batch_size, test_batch_size, T, transforms=None, *, download=True,
                   num_workers=None, pin_memory=None, seed=None, split_by="number", size=None,
                   cache_dir=None, validation=False):  # fmt: skip
            return make_loaders(
                spec, data_dir, batch_size, test_batch_size, T, transforms,
                distributed=distributed, download=download, num_workers=num_workers,
                pin_memory=pin_memory, seed=seed, split_by=split_by, size=size,
                cache_dir=cache_dir, validation=validation,
            )  # fmt: skip

    loader.__name__ = loader.__qualname__ = spec.loader
    loader.__doc__ = (
        f"{spec.doc}\n\n    ``(train_loader, test_loader)`` {where}(see "
        ":func:`snetx.dataset.loaders.make_loaders`; ``validation=True`` adds the "
        "validation loader in the middle where the dataset has one)."
    )
    return loader


def public_functions(module, distributed=False):
    """``{name: function}`` of the datasets whose public module is ``module``
    (``"vision"`` or ``"neuromorphic"``)."""
    out = {}
    for spec in registry.DATASETS.values():
        if spec.module == module:
            fn = _function(spec, distributed)
            fn.__module__ = f"snetx.dataset.{'ddp.' if distributed else ''}{module}"
            out[spec.loader] = fn
    return out
