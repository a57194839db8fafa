"""DDP loaders of :mod:`snetx.dataset.neuromorphic`: the same functions and signatures over
``DistributedSampler`` (the train loader reshuffles itself each pass, as
:mod:`snetx.dataset.ddp.vision`'s), with a per-process ``batch_size``. Rank 0 reads the
files and fills the frame cache first; the other ranks then read the cache.
"""

from ..neuromorphic import loader_functions

__all__ = ["nmnist_dataset", "dvs_gesture_dataset", "cifar10_dvs_dataset", "shd_dataset"]

_functions = loader_functions(distributed=True)
nmnist_dataset = _functions["nmnist_dataset"]
dvs_gesture_dataset = _functions["dvs_gesture_dataset"]
cifar10_dvs_dataset = _functions["cifar10_dvs_dataset"]
shd_dataset = _functions["shd_dataset"]
