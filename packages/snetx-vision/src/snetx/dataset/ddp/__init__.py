"""snetx.dataset.ddp: the loaders of snetx.dataset.vision over DistributedSampler."""

__all__ = ["vision"]
