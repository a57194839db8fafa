"""snetx.models: spiking network architectures (snetx-vision)."""

from . import svggnet

__all__ = ["svggnet"]
