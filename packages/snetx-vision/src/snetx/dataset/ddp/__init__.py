"""snetx.dataset.ddp: the loaders of snetx.dataset.vision and snetx.dataset.neuromorphic
over DistributedSampler."""

__all__ = ["vision", "neuromorphic"]
