"""snetx.cuend: fused CUDA LIF kernels (snetx-cuda).

Importing needs no GPU and compiles nothing; kernels are built by CuPy/NVRTC on first use.
"""

from snetx.snn.surrogate import REGISTERED_SG_FUNCLIST

from . import neuron

__all__ = ["neuron", "REGISTERED_SG_FUNCLIST"]
