"""DDP loaders of :mod:`snetx.dataset.neuromorphic`: the same functions and signatures over
``DistributedSampler`` (the train loader reshuffles itself each pass, as
:mod:`snetx.dataset.ddp.vision`'s), with a per-process ``batch_size``. Rank 0 reads the
files and fills the frame cache first; the other ranks then read the cache.
"""

from ..loaders import public_functions

_functions = public_functions("neuromorphic", distributed=True)
globals().update(_functions)

__all__ = list(_functions)
