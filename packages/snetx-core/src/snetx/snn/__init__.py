"""snetx.snn: spiking neurons, surrogate gradients and STBP algorithms (snetx-core)."""

from pathlib import Path

from . import (
    algorithm,
    algothrim,
    checks,
    family,
    functional,
    layer,
    memory,
    monitor,
    neuron,
    surrogate,
)
from .neuron import ALIF, IF, LIF, CubaLIF, SpikingNeuron

__all__ = [
    "neuron",
    "surrogate",
    "algorithm",
    "algothrim",
    "functional",
    "family",
    "layer",
    "memory",
    "checks",
    "monitor",
    "LIF",
    "IF",
    "CubaLIF",
    "ALIF",
    "SpikingNeuron",
    "include_dir",
]


def include_dir() -> str:
    """The folder of snetx-core's C++/CUDA headers, for code built against them (as
    ``numpy.get_include()``). It holds ``neurons.cuh``, the per-neuron dynamics and
    surrogate derivatives every native backend includes; its ``SurrogateId`` enum numbers
    the surrogates as :data:`snetx.snn.surrogate.SURROGATE_IDS` does.

    >>> import os, snetx.snn
    >>> os.path.isfile(os.path.join(snetx.snn.include_dir(), "neurons.cuh"))
    True
    """
    return str(Path(__file__).with_name("csrc"))
