"""snetx.models: spiking network architectures (snetx-vision)."""

from . import scnn, svggnet

__all__ = ["svggnet", "scnn"]
