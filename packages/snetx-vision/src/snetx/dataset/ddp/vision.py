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

from ..errors import DatasetNotFoundError
from ..loaders import EpochLoader, ShardSampler, public_functions

_functions = public_functions("vision", distributed=True)
globals().update(_functions)

__all__ = [*_functions, "EpochLoader", "ShardSampler", "DatasetNotFoundError"]
