r"""Spiking neuron modules. Each call processes a whole sequence ``N x T x ...`` from rest.

:class:`SpikingNeuron` is the one base of every snetx neuron, in every backend: it holds
and validates the parameters, resolves the surrogate, reads ``alpha`` once per call and
prints them; a backend supplies only ``_resolve_sg`` (which surrogates it runs) and
``_run`` (how). :class:`LIF` runs on torch (the fused path, on CPU the host C++ kernel);
``snetx.cuend.neuron.LIF`` extends it with CUDA kernels, so ``isinstance(m, LIF)`` holds
for both.
"""

import torch
from torch import nn

from . import checks
from . import functional as F
from . import surrogate as _sg
from .surrogate import arc_tan

__all__ = ["SpikingNeuron", "LIF", "IF"]


class SpikingNeuron(nn.Module):
    """Base of snetx's multi-step LIF neurons: parameters, validation, ``forward``, repr.

    Subclasses implement ``_run(x, alpha)`` (``alpha`` already read and checked) and may
    override ``_resolve_sg(sg)`` to restrict the surrogates they accept.
    """

    #: lets monitors and tools find neurons without knowing every backend
    is_spiking_neuron = True

    def __init__(self, tau=2.0, v_th=1.0, v_reset=0.0, sg=arc_tan, alpha=4.0, detach=False):
        super().__init__()
        self.tau, self.v_th, self.v_reset = checks.check_params(tau, v_th, v_reset)
        self.sg = self._resolve_sg(sg)
        self.alpha = checks.check_alpha(alpha)
        if not isinstance(detach, bool):
            raise TypeError(f"detach must be a bool, got {detach!r}")
        self.detach = detach

    def _resolve_sg(self, sg):
        return _sg.get(sg)

    def _run(self, x: torch.Tensor, alpha: float) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement _run(x, alpha)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, checks.resolve_alpha(self.alpha))

    def extra_repr(self) -> str:
        sg = self.sg if isinstance(self.sg, str) else (_sg.name_of(self.sg) or self.sg.__name__)
        return (
            f"tau={self.tau}, v_th={self.v_th}, v_reset={self.v_reset}, sg={sg}, "
            f"alpha={checks.describe_alpha(self.alpha)}, detach={self.detach}"
        )


class LIF(SpikingNeuron):
    r"""Multi-step leaky integrate-and-fire neuron with hard reset, trained by STBP.

    With :math:`u[-1] = 0` and, elementwise, for :math:`t = 0 \dots T-1`:

    .. math::
        h[t] &= u[t-1] / \tau + x[t]                    \quad\text{(charge)} \\
        s[t] &= \Theta(h[t] - v_{th})                   \quad\text{(fire, at } h \ge v_{th}) \\
        u[t] &= h[t] (1 - s[t]) + v_{reset}\, s[t]      \quad\text{(hard reset)}

    The backward pass replaces :math:`\Theta'` by the surrogate derivative
    :math:`\sigma'(h - v_{th}; \alpha)`. With ``detach=True`` the spike in the reset is
    a constant, so :math:`\partial u / \partial h = 1 - s`; otherwise it also carries
    :math:`(v_{reset} - h)\,\sigma'`.

    The fused path (any surrogate exposing ``derivative``) builds no per-step graph and
    saves one tensor, ``h``, for backward; 16-bit inputs keep float32 state. Other
    surrogates use the plain autograd loop. ``torch.compile(lif, fullgraph=True)`` works:
    there is no graph break; Dynamo traces the fused Function with the time loop
    unrolled, and a callable ``alpha`` is read at trace time (a changed value recompiles).

    Args:
        tau (float): membrane time constant, ``>= 1`` (1 means no leak: IF). Default 2.
        v_th (float): firing threshold. Default 1.
        v_reset (float): reset potential, ``< v_th``. Default 0.
        sg: surrogate Function (``snetx.snn.surrogate``) or its name. Default
            :class:`~snetx.snn.surrogate.arc_tan`.
        alpha: surrogate sharpness, a number or a zero-argument callable (for example
            :class:`~snetx.snn.algorithm.EvolvedAlpha`) read once per forward call.
            Default 4.
        detach (bool): detach the spike in the reset path. Default False.

    Shape:
        - Input: :math:`(N, T, *)`, floating point, at least 2 dims.
        - Output: spikes (0 or 1) of the input's shape, dtype and device.

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> lif = neuron.LIF(tau=2.0)
        >>> x = torch.tensor([[[0.6], [0.6], [0.6], [1.2]]])   # N=1, T=4, D=1
        >>> lif(x).flatten().tolist()    # h = 0.6, 0.9, 1.05 (fires, reset), 1.2 (fires)
        [0.0, 0.0, 1.0, 1.0]
    """

    def __init__(self, tau=2.0, v_th=1.0, v_reset=0.0, sg=arc_tan, alpha=4.0, detach=False):
        super().__init__(tau, v_th, v_reset, sg, alpha, detach)
        self._fused = _sg.has_derivative(self.sg)

    def _run(self, x, alpha):
        return F.run(x, self.tau, self.v_th, self.v_reset, self.sg, alpha, self.detach, self._fused)


class IF(LIF):
    r"""Integrate-and-fire neuron: :class:`LIF` with ``tau = 1`` (no leak).

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> neuron.IF()(torch.full((1, 3, 1), 0.5)).flatten().tolist()
        [0.0, 1.0, 0.0]
    """

    def __init__(self, v_th=1.0, v_reset=0.0, sg=arc_tan, alpha=4.0, detach=False):
        super().__init__(1.0, v_th, v_reset, sg, alpha, detach)
