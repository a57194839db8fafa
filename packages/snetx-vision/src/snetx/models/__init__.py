"""snetx.models: spiking network architectures (snetx-vision); :mod:`.registry` lists the
ones the training command builds."""

from . import registry, scnn, svggnet

__all__ = ["svggnet", "scnn", "registry"]
