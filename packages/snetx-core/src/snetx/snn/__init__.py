"""snetx.snn: spiking neurons, surrogate gradients and STBP algorithms (snetx-core)."""

from . import algorithm, algothrim, functional, monitor, neuron, surrogate
from .neuron import IF, LIF

__all__ = ["neuron", "surrogate", "algorithm", "algothrim", "functional", "monitor", "LIF", "IF"]
