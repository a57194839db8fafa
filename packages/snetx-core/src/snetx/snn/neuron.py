r"""Spiking neuron modules on sequences ``N x T x ...``.

:class:`SpikingNeuron` is the one base of every snetx neuron, in every backend: it holds
and validates the parameters, resolves the surrogate, reads ``alpha`` once per call,
keeps the membrane state when asked to, and prints them; a backend supplies only
``_resolve_sg`` (which surrogates it runs) and ``_run`` (how). :class:`LIF` runs on torch
(the fused path, on CPU the host C++ kernel); ``snetx.cuend.neuron.LIF`` extends it with
CUDA kernels, so ``isinstance(m, LIF)`` holds for both. :class:`PLIF` learns its time
constant.

State. By default every call processes a whole sequence from rest. With
``stateful=True`` a call starts from the state the previous call left (rest after
construction or :meth:`~SpikingNeuron.reset`) and keeps its final state in ``.state``:
long sequences can be fed in chunks (gradients flow across chunks until
:meth:`~SpikingNeuron.detach_state`), and :meth:`~SpikingNeuron.step` runs one time step
of a stream. :func:`snetx.snn.functional.reset_net` resets every neuron of a model.
"""

import math
import numbers

import torch
from torch import nn

from . import checks
from . import functional as F
from . import surrogate as _sg
from .surrogate import arc_tan

__all__ = ["SpikingNeuron", "LIF", "IF", "PLIF"]


class SpikingNeuron(nn.Module):
    """Base of snetx's multi-step LIF neurons: parameters, validation, state, ``forward``,
    repr.

    Subclasses implement ``_run(x, alpha, u0)`` -> ``(spikes, u_last)`` (``alpha`` already
    read and checked, ``u0`` None for rest) and may override ``_resolve_sg(sg)`` to
    restrict the surrogates they accept, and ``_k()`` to learn the decay.
    """

    #: lets monitors and tools find neurons without knowing every backend
    is_spiking_neuron = True

    def __init__(
        self,
        tau=2.0,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
    ):
        super().__init__()
        self.tau, self.v_th, self.v_reset = checks.check_params(tau, v_th, v_reset)
        self.sg = self._resolve_sg(sg)
        # decided once here, outside any compiled region (Dynamo cannot trace issubclass on
        # autograd Functions): a surrogate without derivative() runs the plain loop
        self._fused = _sg.has_derivative(self.sg)
        self.alpha = checks.check_alpha(alpha)
        for name, flag in (("detach", detach), ("stateful", stateful)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.detach, self.stateful = detach, stateful
        #: the membrane state after the last call (stateful) or step; None is rest
        self.state = None

    def _resolve_sg(self, sg):
        return _sg.get(sg)

    def _k(self):
        """The learnable decay (a tensor), or None for the fixed ``1 / tau``."""
        return None

    def _run(self, x, alpha, u0):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _run(x, alpha, u0)")

    # ---- state -----------------------------------------------------------------------
    def reset(self):
        """Return to rest: the next call or step starts from ``u = 0``."""
        self.state = None

    def detach_state(self):
        """Keep the state's value but cut the graph behind it (truncated BPTT): no
        gradient flows from later calls into earlier ones."""
        if self.state is not None:
            self.state = self.state.detach()

    def _state_for(self, shape, x):
        if self.state is None:
            return None
        if tuple(self.state.shape) != tuple(shape) or self.state.device != x.device:
            raise ValueError(
                f"{type(self).__name__} keeps a state of shape {tuple(self.state.shape)} on "
                f"{self.state.device}, but this input's N x ... is {tuple(shape)} on "
                f"{x.device}: call reset() (or snetx.snn.functional.reset_net(model)) "
                "between sequences of different shapes"
            )
        return self.state

    # ---- running -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.check_input(x)
        alpha = checks.resolve_alpha(self.alpha)
        u0 = self._state_for(F.step_shape(x), x) if self.stateful else None
        spikes, u_last = self._run(x, alpha, u0)
        if self.stateful:
            self.state = u_last
        return spikes

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """One time step on ``x_t`` of shape ``N x ...`` (no T axis), from and into
        ``.state`` (whatever ``stateful`` says); returns the spikes ``N x ...``."""
        if not isinstance(x_t, torch.Tensor) or x_t.dim() < 1:
            raise ValueError("step() takes one time step N x ... (at least 1 dim)")
        stateful, self.stateful = self.stateful, True
        try:  # through __call__, so that forward hooks (monitors) see every step
            return self(x_t.unsqueeze(1)).squeeze(1)
        finally:
            self.stateful = stateful

    def extra_repr(self) -> str:
        sg = self.sg if isinstance(self.sg, str) else (_sg.name_of(self.sg) or self.sg.__name__)
        reset = "None (soft)" if self.v_reset is None else self.v_reset
        text = (
            f"tau={self._tau_repr()}, v_th={self.v_th}, v_reset={reset}, sg={sg}, "
            f"alpha={checks.describe_alpha(self.alpha)}, detach={self.detach}"
        )
        return text + (", stateful=True" if self.stateful else "")

    def _tau_repr(self):
        return self.tau


class LIF(SpikingNeuron):
    r"""Multi-step leaky integrate-and-fire neuron, trained by STBP.

    From the state :math:`u[-1]` (rest, 0, unless the neuron is stateful) and,
    elementwise, for :math:`t = 0 \dots T-1`:

    .. math::
        h[t] &= u[t-1] / \tau + x[t]                    \quad\text{(charge)} \\
        s[t] &= \Theta(h[t] - v_{th})                   \quad\text{(fire, at } h \ge v_{th}) \\
        u[t] &= h[t] (1 - s[t]) + v_{reset}\, s[t]      \quad\text{(hard reset)}

    or, with ``v_reset=None``, :math:`u[t] = h[t] - v_{th}\, s[t]` (soft reset, by
    subtraction). The backward pass replaces :math:`\Theta'` by the surrogate derivative
    :math:`\sigma'(h - v_{th}; \alpha)`. With ``detach=True`` the spike in the reset is a
    constant, so :math:`\partial u / \partial h = 1 - s` (hard) or 1 (soft); otherwise it
    also carries :math:`(v_{reset} - h)\,\sigma'` (hard) or :math:`-v_{th}\,\sigma'` (soft).

    The fused path (any surrogate exposing ``derivative``) builds no per-step graph and
    saves one tensor of the input's size, ``h``, for backward; 16-bit inputs keep float32
    state. Other surrogates use the plain autograd loop. ``torch.compile(lif,
    fullgraph=True)`` works: there is no graph break; Dynamo traces the fused Function
    with the time loop unrolled, and a callable ``alpha`` is read at trace time (a
    changed value recompiles).

    Args:
        tau (float): membrane time constant, ``>= 1`` (1 means no leak: IF). Default 2.
        v_th (float): firing threshold. Default 1.
        v_reset (float or None): reset potential, ``< v_th``; None resets by subtracting
            ``v_th``. Default 0.
        sg: surrogate Function (``snetx.snn.surrogate``) or its name. Default
            :class:`~snetx.snn.surrogate.arc_tan`.
        alpha: surrogate sharpness, a number or a zero-argument callable (for example
            :class:`~snetx.snn.algorithm.EvolvedAlpha`) read once per forward call.
            Default 4.
        detach (bool): detach the spike in the reset path. Default False.
        stateful (bool): start each call from the state the last one left (see the
            module doc). Default False.

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
        >>> stream = neuron.LIF(tau=2.0)
        >>> [stream.step(x[:, t]).item() for t in range(4)]      # one step at a time
        [0.0, 0.0, 1.0, 1.0]
    """

    def _run(self, x, alpha, u0):
        return F.run_state(
            *(x, self.tau, self.v_th, self.v_reset, self.sg, alpha, self.detach, self._fused),
            u0=u0,
            k=self._k(),
        )


class IF(LIF):
    r"""Integrate-and-fire neuron: :class:`LIF` with ``tau = 1`` (no leak).

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> neuron.IF()(torch.full((1, 3, 1), 0.5)).flatten().tolist()
        [0.0, 1.0, 0.0]
    """

    def __init__(self, v_th=1.0, v_reset=0.0, sg=arc_tan, alpha=4.0, detach=False, stateful=False):
        super().__init__(1.0, v_th, v_reset, sg, alpha, detach, stateful)


class PLIF(LIF):
    r"""LIF with a learnable time constant (Fang et al., ICCV 2021: parametric LIF).

    The decay :math:`k = \mathrm{sigmoid}(w)` (so :math:`\tau = 1/k`) replaces
    :math:`1/\tau` in the charge, :math:`h[t] = k\, u[t-1] + x[t]`; ``w`` is an
    ``nn.Parameter`` initialised to :math:`-\log(\tau - 1)` so that :math:`k = 1/\tau`.
    Its gradient is :math:`\partial L/\partial k = \sum_t \sum_{\text{neurons}} g_h[t]\,
    u[t-1]`, times :math:`k(1-k)` for ``w``, summed over the neurons that share the value
    (all of them, or one channel's with ``channels=C``) in a fixed order: the same bits
    every run.

    Args:
        tau (float): initial time constant, ``> 1``. Default 2.
        channels (int or None): None learns one ``w``; ``C`` learns one per channel, along
            dim 2 of the input (``N x T x C x ...``).
        v_th, v_reset, sg, alpha, detach, stateful: as :class:`LIF`.

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> plif = neuron.PLIF(tau=2.0, channels=3)
        >>> plif.w.shape, [round(t, 3) for t in plif.tau_values().tolist()]
        (torch.Size([3]), [2.0, 2.0, 2.0])
        >>> plif(torch.rand(4, 8, 3, 5)).shape
        torch.Size([4, 8, 3, 5])
    """

    def __init__(
        self,
        tau=2.0,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
        channels=None,
    ):
        super().__init__(tau, v_th, v_reset, sg, alpha, detach, stateful)
        if not self.tau > 1:
            raise ValueError(f"PLIF needs an initial tau > 1 (w = -log(tau - 1)), got {tau!r}")
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1
        ):
            raise ValueError(f"channels must be None or an int >= 1, got {channels!r}")
        self.channels = None if channels is None else int(channels)
        shape = () if channels is None else (int(channels),)
        self.w = nn.Parameter(torch.full(shape, -math.log(self.tau - 1.0)))

    def _k(self):
        return torch.sigmoid(self.w)

    def tau_values(self):
        """The current time constant(s), ``1 / sigmoid(w)`` (a detached tensor)."""
        return 1.0 / torch.sigmoid(self.w.detach())

    def _tau_repr(self):
        return f"{self.tau} (initial)"

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", channels={self.channels}" if self.channels else "")
