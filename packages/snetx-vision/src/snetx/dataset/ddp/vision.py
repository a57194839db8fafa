"""DDP loaders: the functions and signatures of :mod:`snetx.dataset.vision` over
``DistributedSampler``, with a per-process ``batch_size``.

Call ``torch.distributed.init_process_group`` first. The train loader shards a shuffled
permutation (the same on every rank, from ``seed``) and drops the last partial batch;
the test loader shards the test set in order, without padding, so metrics summed over
ranks count every test image exactly once.

Reshuffling is automatic: each pass over the train loader (``for x, y in train``) calls
``sampler.set_epoch`` with the next epoch number. To resume at epoch ``e``, call
``train.set_epoch(e)`` before the loop.
"""

import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from .._common import DatasetNotFoundError, loader_functions

__all__ = [
    "mnist_dataset",
    "Fmnist_dataset",
    "cifar10_dataset",
    "cifar100_dataset",
    "digits_dataset",
    "EpochLoader",
    "ShardSampler",
    "DatasetNotFoundError",
]


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


def _require_process_group():
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "snetx.dataset.ddp.vision needs an initialized process group: call "
            "torch.distributed.init_process_group(...) first (for example under torchrun), "
            "or use snetx.dataset.vision for a single process"
        )


def _loaders(req):
    _require_process_group()
    # rank 0 downloads first so the other ranks do not race on the same files
    if dist.get_rank() == 0:
        train_set, test_set = req.datasets()
        dist.barrier()
    else:
        dist.barrier()
        train_set, test_set = req.datasets(download=False)
    opts = req.loader_options
    sampler = DistributedSampler(train_set, shuffle=True, seed=req.seed or 0, drop_last=True)
    train = EpochLoader(
        train_set, batch_size=req.batch_size, sampler=sampler, drop_last=True, **opts
    )
    test = DataLoader(
        test_set,
        batch_size=req.test_batch_size,
        sampler=ShardSampler(test_set),
        drop_last=False,
        **opts,
    )
    return train, test


_functions = loader_functions(
    _loaders,
    "{name} (train_loader, test_loader) for this rank; batch_size is per process. "
    "See the module docstring.",
    default_seed=0,
)
mnist_dataset = _functions["mnist_dataset"]
Fmnist_dataset = _functions["Fmnist_dataset"]
cifar10_dataset = _functions["cifar10_dataset"]
cifar100_dataset = _functions["cifar100_dataset"]
digits_dataset = _functions["digits_dataset"]
