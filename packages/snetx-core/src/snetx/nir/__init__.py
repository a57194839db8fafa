r"""Exchange with the neuromorphic ecosystem through NIR (the extra ``[nir]``:
``pip install './packages/snetx-core[nir]'`` from a clone).

:func:`export` turns a snetx model into a ``nir.NIRGraph``; :func:`load` runs a NIR graph
(one of ours, or one Norse, snnTorch, SpikingJelly, Sinabs, ... wrote) on ``N x T x ...``
inputs with snetx's neurons. ``nir.write(path, graph)`` / ``nir.read(path)`` store graphs
in NIR's HDF5 files.

**Mapping.** snetx's LIF is discrete: :math:`h_t = k\,u_{t-1} + x_t` with decay
:math:`k = 1/\tau_{\text{snetx}}`, fire when :math:`h_t \ge v_{th}`, then reset. NIR's LIF
is the ODE :math:`\tau\,\dot v = (v_{leak} - v) + r\,I`; its importers step it with Euler,
:math:`v_t = (1 - dt/\tau)\,v_{t-1} + (dt/\tau)(v_{leak} + r I_t)`. The two agree when

.. math::
    \tau_{\text{NIR}} = \frac{dt}{1 - k}, \qquad r = \frac{1}{1 - k}, \qquad v_{leak} = 0,
    \qquad v_{threshold} = v_{th}, \qquad v_{reset} = v_{reset}.

``r`` is then folded into the weights that feed the neuron (``W`` becomes ``r W``, ``r``
becomes 1), because Norse's importer ignores ``r``; snnTorch's reads ``r`` or rescales its
threshold, so both run the folded graph identically. ``IF`` (``tau = 1``, :math:`k = 1`)
maps to NIR's ``IF`` with :math:`r = 1/dt` (the Euler step :math:`v + dt\, r I` is
then :math:`v + I`; Norse adds its input unscaled and ignores ``r``, so it agrees too).
``PLIF`` exports the decay it has learned (one per channel with ``channels=C``). NIR's
neurons fire when :math:`v > v_{threshold}`, snetx's when :math:`h \ge v_{th}`: the two
differ only when a membrane lands exactly on the threshold. Reset by subtraction
(``v_reset=None``) has no NIR node (see ``soft_reset``).

``Tosnn``-wrapped ``Conv2d``, ``Linear``, ``Flatten`` and average pools (also
``AdaptiveAvgPool2d`` to a size that divides the input) map to NIR's ``Conv2d``,
``Affine``, ``Flatten`` and ``AvgPool2d`` (or ``SumPool2d``, ``pool="sum"``); a BatchNorm is
folded into the convolution or linear layer before it (with its running statistics);
residual additions become two edges into one node (NIR sums a node's inputs).
``CubaLIF`` maps to NIR's ``CubaLIF`` (input gains ``w_in dt/tau_syn`` and ``r dt/tau_mem``
folded into the weights that feed it), and :class:`snetx.snn.layer.Recurrent` to a
subgraph ``neuron <-> w_rec`` as snnTorch writes recurrent layers (``load`` turns any cycle
``neuron -> Affine/Linear -> neuron`` back into a ``Recurrent``). ``ALIF`` has no NIR
neuron. Anything else raises :class:`NIRExportError` naming the module or operation; see
the documentation's NIR page for the ``dt`` each peer's graphs assume.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx import nir as snir
    >>> from snetx.snn import neuron
    >>> net = nn.Sequential(nn.Linear(4, 3), neuron.LIF(tau=2.0))
    >>> graph = snir.export(net, torch.rand(1, 5, 4), dt=1e-4)
    >>> sorted(graph.nodes)
    ['0', '1', 'input', 'output']
    >>> float(graph.nodes["1"].tau[0]), float(graph.nodes["1"].r[0])
    (0.0002, 1.0)
    >>> x = torch.rand(2, 5, 4)
    >>> torch.equal(snir.load(graph)(x), net(x))
    True
"""

try:
    import nir as _nir  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    from snetx import install_hint

    hint = install_hint("snetx-core", "nir")
    raise ImportError(f"snetx.nir needs the 'nir' package: {hint}") from e

from ._export import export
from ._load import NIRImportError, NIRModule, load
from ._trace import NIRExportError

__all__ = ["export", "load", "NIRModule", "NIRExportError", "NIRImportError"]
