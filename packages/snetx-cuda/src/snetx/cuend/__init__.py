"""snetx.cuend: the neuron family as fused CUDA kernels (snetx-cuda).

Importing needs no GPU and compiles nothing; kernels are built by CuPy/NVRTC on first use.
The neurons are the ones of :mod:`snetx.snn.neuron`, extended with how they run:

>>> from snetx.cuend import neuron
>>> from snetx.snn import neuron as core
>>> lif = neuron.LIF(tau=2.0, sg="sigmoid")
>>> lif
LIF(tau=2.0, v_th=1.0, v_reset=0.0, sg=sigmoid, alpha=4.0, detach=False)
>>> isinstance(lif, core.LIF)
True
>>> neuron.LIF(sg="no-such")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown surrogate name 'no-such'; known names: 'arctan', 'sigmoid', ...
"""

from snetx.snn.surrogate import REGISTERED_SG_FUNCLIST

from . import neuron

__all__ = ["neuron", "REGISTERED_SG_FUNCLIST"]
