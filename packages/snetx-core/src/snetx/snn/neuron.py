r"""Spiking neuron modules on sequences ``N x T x ...``: the neuron family.

:class:`SpikingNeuron` is the one base of every snetx neuron: it holds and validates the
parameters, resolves the surrogate, reads ``alpha`` once per call, keeps the state when
asked to, and prints them. Each neuron is a small subclass naming its description
(:mod:`snetx.snn.family`: state variables, decays, constants, step) and its arguments:
:class:`LIF` (with :class:`IF` and :class:`PLIF`), :class:`CubaLIF` (a synaptic current)
and :class:`ALIF` (an adaptive threshold). How it runs is a registered backend
(``backend="torch"``: the fused path, on CPU the host C++ kernel; ``"cuda"``: the CUDA
kernels of snetx-cuda, whose ``snetx.cuend.neuron`` classes are these with that default),
so ``isinstance(m, LIF)`` holds whatever runs it. Every time constant can be learned
(``learn=True`` or a tuple of names, optionally per channel), as :class:`PLIF` learns
the LIF's.

State. By default every call processes a whole sequence from rest. With
``stateful=True`` a call starts from the state the previous call left (rest after
construction or :meth:`~SpikingNeuron.reset`) and keeps its final state in ``.state``:
long sequences can be fed in chunks (gradients flow across chunks until
:meth:`~SpikingNeuron.detach_state`), and :meth:`~SpikingNeuron.step` runs one time step
of a stream. The state is a tensor for one-variable neurons (the LIF's ``u``) and the
description's named tuple otherwise (``CubaLIFState(i, u)``, ``ALIFState(u, a)``).
:func:`snetx.snn.functional.reset_net` resets every neuron of a model.
"""

import math
import numbers

import numpy as np
import torch
from torch import nn

from . import _nir_fields, checks, family, memory
from . import functional as F
from . import surrogate as _sg
from .surrogate import arc_tan

__all__ = ["SpikingNeuron", "LIF", "IF", "PLIF", "CubaLIF", "ALIF"]


def _check_tau(name, value, learned):
    checks.check_real(name, value)
    if learned and not value > 1:
        raise ValueError(f"a learned {name} needs an initial value > 1 (w = -log({name} - 1)), "
                         f"got {value!r}")  # fmt: skip
    if value < 1:
        raise ValueError(f"{name} must be >= 1 (1 means no decay), got {value!r}")
    return float(value)


class SpikingNeuron(nn.Module):
    """Base of snetx's multi-step neurons: parameters, validation, state, ``forward``,
    repr. A subclass sets ``description`` (a :class:`snetx.snn.family.Description`) and
    calls ``super().__init__`` with its time constants and own constants by name; it may
    override ``_resolve_sg(sg)`` to restrict the surrogates it accepts and ``_decays()``
    to compute its decays another way (:class:`PLIF`).
    """

    #: lets monitors and tools find neurons without knowing every backend
    is_spiking_neuron = True
    description = family.LIF
    #: the registered backend that runs the neuron (snetx.snn.functional.BACKENDS)
    backend = "torch"

    def __init__(
        self,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
        *,
        taus=None,
        consts=None,
        learn=False,
        channels=None,
        backend=None,
    ):
        super().__init__()
        desc = self.description
        taus = dict(taus or {})
        if tuple(taus) != desc.decays:
            raise TypeError(f"{type(self).__name__} has time constants {desc.decays}")
        checks.check_real("v_th", v_th)
        if v_reset is not None:
            checks.check_real("v_reset", v_reset)
            if not v_reset < v_th:
                raise ValueError(
                    f"v_reset must be < v_th, got v_reset={v_reset!r}, v_th={v_th!r}"
                )
        self.v_th, self.v_reset = float(v_th), None if v_reset is None else float(v_reset)
        for name, value in (consts or {}).items():
            setattr(self, name, float(checks.check_real(name, value)))
        learned = _learned_names(learn, desc.decays)
        for name, value in taus.items():
            setattr(self, name, _check_tau(name, value, name in learned))
        self.learn = learned
        self.channels = _check_channels(channels, learned)
        for name in learned:
            shape = () if self.channels is None else (self.channels,)
            w = torch.full(shape, -math.log(getattr(self, name) - 1.0))
            self.register_parameter(_param(name), nn.Parameter(w))
        if backend is not None:
            if not isinstance(backend, str):
                raise TypeError(f"backend must be a name, got {backend!r}")
            self.backend = backend
        self.sg = self._resolve_sg(sg)
        # decided once here, outside any compiled region (Dynamo cannot trace issubclass on
        # autograd Functions): a surrogate without derivative() runs the plain loop
        self._fused = _sg.has_derivative(self.sg)
        self.alpha = checks.check_alpha(alpha)
        for name, flag in (("detach", detach), ("stateful", stateful)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.detach, self.stateful = detach, stateful
        #: the state after the last call (stateful) or step; None is rest
        self.state = None

    def _resolve_sg(self, sg):
        return _sg.get(sg)

    def _decays(self):
        """Every decay of the description: ``sigmoid(w)`` when learned, else ``1 / tau``."""
        return tuple(
            torch.sigmoid(getattr(self, _param(name))) if name in self.learn
            else 1.0 / getattr(self, name)
            for name in self.description.decays
        )  # fmt: skip

    def _consts(self):
        return tuple(
            0.0 if (n == "v_reset" and self.v_reset is None) else getattr(self, n)
            for n in self.description.consts
        )  # fmt: skip

    def tau_values(self, name=None):
        """The current time constant(s) ``1 / decay`` of ``name`` (default: the first of
        the description), a detached tensor."""
        name = name or self.description.decays[0]
        decay = self._decays()[self.description.decays.index(name)]
        return 1.0 / torch.as_tensor(decay).detach()

    # ---- state -----------------------------------------------------------------------
    def reset(self):
        """Return to rest: the next call or step starts from a zero state."""
        self.state = None

    def detach_state(self):
        """Keep the state's value but cut the graph behind it (truncated BPTT): no
        gradient flows from later calls into earlier ones."""
        if isinstance(self.state, torch.Tensor):
            self.state = self.state.detach()
        elif self.state is not None:
            self.state = type(self.state)(*(t.detach() for t in self.state))

    def _state_for(self, shape, x):
        if self.state is None:
            return None
        parts = (self.state,) if isinstance(self.state, torch.Tensor) else tuple(self.state)
        for t in parts:
            if tuple(t.shape) != tuple(shape) or t.device != x.device:
                raise ValueError(
                    f"{type(self).__name__} keeps a state of shape {tuple(t.shape)} on "
                    f"{t.device}, but this input's N x ... is {tuple(shape)} on "
                    f"{x.device}: call reset() (or snetx.snn.functional.reset_net(model)) "
                    "between sequences of different shapes"
                )
        return self.state

    # ---- running -----------------------------------------------------------------------
    def _run(self, x, alpha, state0):
        """(spikes, final state) through the registered backend (the final state None
        unless ``stateful``: nothing reads it then)."""
        return F.run_neuron(
            *(self.description, x, self._decays(), self._consts(), self.v_reset is None),
            *(self.sg, alpha, self.detach, self._fused, state0, self.backend),
            last=self.stateful,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.check_input(x)
        alpha = checks.resolve_alpha(self.alpha)
        state0 = self._state_for(F.step_shape(x), x) if self.stateful else None
        spikes, state = self._run(x, alpha, state0)
        if self.stateful:
            self.state = state[0] if len(self.description.states) == 1 else state
        return memory.mark(spikes)  # 0/1: a layer reading them may keep them as bits

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
        taus = ", ".join(f"{n}={self._tau_repr(n)}" for n in self.description.decays)
        own = "".join(f", {n}={getattr(self, n)}" for n in self.description.consts[2:])
        text = (
            f"{taus}, v_th={self.v_th}, v_reset={reset}{own}, sg={sg}, "
            f"alpha={checks.describe_alpha(self.alpha)}, detach={self.detach}"
        )
        if self.channels:
            text += f", channels={self.channels}"
        if type(self).backend != self.backend:
            text += f", backend={self.backend!r}"
        return text + (", stateful=True" if self.stateful else "")

    def _tau_repr(self, name):
        value = getattr(self, name)
        return f"{value} (initial)" if name in self.learn else value

    # ---- NIR (snetx.nir.export / load) ---------------------------------------------------
    #: the NIR node types :meth:`from_nir` reads; snetx.nir.load finds the class by them
    nir_nodes = ()

    def to_nir(self, dt, shape):
        """This neuron as a NIR node for a layer of ``shape`` stepped with ``dt``:
        ``(node type, fields)``, the fields numpy arrays of ``shape``. A soft reset is
        written as ``v_reset = 0`` (the exporter records it in the node's metadata).
        Raises ValueError when NIR has no such neuron."""
        raise ValueError(
            f"{type(self).__name__} has no NIR neuron (NIR has LIF, IF and CubaLIF)"
        )

    @classmethod
    def from_nir(cls, node, dt):
        """``(neuron, input scale, input shift)`` for a NIR node of one of
        :attr:`nir_nodes`, stepped with ``dt``: the scale and shift (one value or one per
        channel) are what the node does to its input before the neuron's charge; the
        loader folds them into the weights that feed it. ValueError names the field that
        snetx cannot run."""
        raise ValueError(f"{cls.__name__} reads no NIR node")

    @staticmethod
    def _nir_reset(node):
        """(v_th, v_reset or None for the soft reset snetx records in the metadata)."""
        v_th = _nir_fields.uniform("v_threshold", node.v_threshold)
        if (getattr(node, "metadata", None) or {}).get("snetx_reset") == "subtract":
            return v_th, None
        return v_th, _nir_fields.uniform("v_reset", node.v_reset)

    def _nir_thresholds(self, shape):
        ones = np.ones(shape, dtype=np.float64)
        return ones * self.v_th, ones * (0.0 if self.v_reset is None else self.v_reset)


def _param(name):
    """The parameter of a learned time constant: ``w`` for ``tau`` (PLIF's name), else
    ``w_<name>``; ``sigmoid(w) = 1 / tau``."""
    return "w" if name == "tau" else "w_" + name


def _learned_names(learn, decays):
    if learn is True:
        return tuple(decays)
    if learn is False or learn is None:
        return ()
    names = (learn,) if isinstance(learn, str) else tuple(learn)
    for n in names:
        if n not in decays:
            raise ValueError(f"learn names a time constant: one of {decays}, got {n!r}")
    return names


def _check_channels(channels, learned):
    if channels is None:
        return None
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(f"channels must be None or an int >= 1, got {channels!r}")
    if not learned:
        raise ValueError("channels is the number of learned time constants: set learn too")
    return int(channels)


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
    saves one tensor of the input's size, the input ``x``, for backward (the backward
    recomputes the steps from it); 16-bit inputs keep float32 state. Other surrogates
    use the plain autograd loop. ``torch.compile(lif, fullgraph=True)`` works: there is
    no graph break; Dynamo traces the neuron's plain step with the time loop unrolled,
    and a callable ``alpha`` is read at trace time (a changed value recompiles).

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
        learn (bool): learn the time constant (as :class:`PLIF`, parameter ``w``).
            Default False.
        channels (int or None): with ``learn``, one time constant per channel (dim 2).
        backend (str or None): the registered backend that runs it (``"torch"``, or
            ``"cuda"`` with snetx-cuda). Default: the class's.

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

    def __init__(
        self,
        tau=2.0,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
        *,
        learn=False,
        channels=None,
        backend=None,
    ):
        super().__init__(
            *(v_th, v_reset, sg, alpha, detach, stateful),
            taus={"tau": tau},
            learn=learn,
            channels=channels,
            backend=backend,
        )

    nir_nodes = ("LIF", "IF")

    def to_nir(self, dt, shape):
        """NIR's ``LIF`` with ``tau = dt / (1 - k)`` and ``r = 1 / (1 - k)`` (the Euler
        step's input gain ``r dt / tau`` is 1), or ``IF`` with ``r = 1 / dt`` when
        ``k = 1``."""
        f = _nir_fields
        k = f.per_neuron(f.learned_decay(self, "tau"), shape)
        ones = np.ones(shape, dtype=np.float64)
        v_th, v_reset = self._nir_thresholds(shape)
        if np.all(k == 1.0):  # IF: dv/dt = r I, Euler step v + dt r I
            return "IF", dict(r=ones / dt, v_threshold=v_th, v_reset=v_reset)
        if np.any(k >= 1.0) or np.any(k <= 0.0):
            raise ValueError("a decay outside (0, 1) has no NIR time constant")
        return "LIF", dict(tau=dt / (1.0 - k), r=1.0 / (1.0 - k), v_leak=ones * 0.0,
                           v_threshold=v_th, v_reset=v_reset)  # fmt: skip

    @classmethod
    def from_nir(cls, node, dt):
        """NIR's ``IF`` (input gain ``r dt``) or ``LIF`` (decay ``1 - dt / tau``, gain
        ``r dt / tau``, ``v_leak`` as an input shift); time constants per layer, or per
        channel (a frozen learned decay)."""
        f = _nir_fields
        v_th, v_reset = cls._nir_reset(node)
        if type(node).__name__ == "IF":
            scale = f.channel_values("r", node.r) * dt
            return IF(v_th=v_th, v_reset=v_reset), scale, np.zeros_like(scale)
        tau = f.channel_values("tau", node.tau)
        k = f.decay("tau", tau, dt)
        scale = f.channel_values("r", node.r) * dt / tau
        shift = f.channel_values("v_leak", node.v_leak) * dt / tau
        if f.one_value(k) is not None:
            return LIF(tau=1.0 / f.one_value(k), v_th=v_th, v_reset=v_reset), scale, shift
        plif = PLIF(tau=2.0, v_th=v_th, v_reset=v_reset, channels=k.size)
        f.set_learned(plif, "w", k)
        return plif, scale, shift


class IF(LIF):
    r"""Integrate-and-fire neuron: :class:`LIF` with ``tau = 1`` (no leak).

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> neuron.IF()(torch.full((1, 3, 1), 0.5)).flatten().tolist()
        [0.0, 1.0, 0.0]
    """

    def __init__(
        self, v_th=1.0, v_reset=0.0, sg=arc_tan, alpha=4.0, detach=False, stateful=False, *,
        backend=None,
    ):  # fmt: skip
        super().__init__(1.0, v_th, v_reset, sg, alpha, detach, stateful, backend=backend)


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
        *,
        backend=None,
    ):
        if not checks.check_real("tau", tau) > 1:
            raise ValueError(f"PLIF needs an initial tau > 1 (w = -log(tau - 1)), got {tau!r}")
        super().__init__(
            *(tau, v_th, v_reset, sg, alpha, detach, stateful),
            learn=True,
            channels=channels,
            backend=backend,
        )

    def _tau_repr(self, name):
        return f"{self.tau} (initial)"




_SHARED_ARGS = """\
        v_th (float): firing threshold. Default 1.
        v_reset (float or None): reset potential, ``< v_th``; None resets by subtracting
            the threshold. Default 0.
        sg, alpha, detach, stateful, backend: as :class:`LIF`; ``detach`` makes the spike a
            constant wherever it updates state (reset, adaptation).
        learn (bool or tuple of str): learn every time constant (True) or those named
            (parameters ``w`` for ``tau``, ``w_<name>`` for the others,
            ``sigmoid(w) = 1 / tau``). Default False.
        channels (int or None): with ``learn``, one value per channel (dim 2).
"""


def _shared_args(cls):
    """Put the arguments every neuron of the family shares into ``cls``'s docstring (one
    text for all; doctest and Sphinx read the result)."""
    cls.__doc__ = cls.__doc__.replace("        (the arguments every neuron shares)\n", _SHARED_ARGS)
    return cls


@_shared_args
class CubaLIF(SpikingNeuron):
    r"""Current-based LIF: a synaptic current filters the input (snnTorch ``Synaptic``,
    Norse ``LIFCell``, NIR ``CubaLIF``).

    From the state :math:`(i, u)[-1]` (rest, 0) and, elementwise:

    .. math::
        i[t] &= i[t-1] / \tau_{syn} + x[t]           \quad\text{(synaptic current)} \\
        h[t] &= u[t-1] / \tau + i[t]                  \quad\text{(charge, this step's current)} \\
        s[t] &= \Theta(h[t] - v_{th}) \\
        u[t] &= h[t] (1 - s[t]) + v_{reset}\, s[t]    \quad\text{(soft: } h[t] - v_{th} s[t])

    Args:
        tau_syn (float): synaptic time constant, ``>= 1``. Default 2.
        tau (float): membrane time constant, ``>= 1``. Default 2.
        (the arguments every neuron shares)

    Shape:
        - Input: :math:`(N, T, *)`, floating point. Output: spikes of the same shape.
        - State: :class:`snetx.snn.family.CubaLIFState` ``(i, u)``, each :math:`(N, *)`.

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> cuba = neuron.CubaLIF(tau_syn=2.0, tau=2.0)
        >>> x = torch.tensor([[[0.5], [0.5], [0.0], [0.0]]])    # i = 0.5, 0.75, 0.375, ...
        >>> cuba(x).flatten().tolist()                          # h = 0.5, 1.0 (fires), ...
        [0.0, 1.0, 0.0, 0.0]
    """

    description = family.CUBALIF

    def __init__(
        self,
        tau_syn=2.0,
        tau=2.0,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
        *,
        learn=False,
        channels=None,
        backend=None,
    ):
        super().__init__(
            *(v_th, v_reset, sg, alpha, detach, stateful),
            taus={"tau_syn": tau_syn, "tau": tau},
            learn=learn,
            channels=channels,
            backend=backend,
        )

    nir_nodes = ("CubaLIF",)

    def to_nir(self, dt, shape):
        """NIR's ``CubaLIF`` with ``tau_syn = dt / (1 - k_syn)``, ``tau_mem = dt / (1 -
        k)``, ``w_in = tau_syn / dt`` and ``r = tau_mem / dt`` (both input gains 1, as
        snnTorch writes it)."""
        f = _nir_fields
        k_syn = f.per_neuron(f.learned_decay(self, "tau_syn"), shape)
        k_mem = f.per_neuron(f.learned_decay(self, "tau"), shape)
        if np.any(k_syn >= 1.0) or np.any(k_mem >= 1.0):
            raise ValueError("a CubaLIF time constant of 1 (no decay) has no NIR time constant")
        tau_syn, tau_mem = dt / (1.0 - k_syn), dt / (1.0 - k_mem)
        v_th, v_reset = self._nir_thresholds(shape)
        return "CubaLIF", dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt,
                               w_in=tau_syn / dt, v_leak=v_th * 0.0, v_threshold=v_th,
                               v_reset=v_reset)  # fmt: skip

    @classmethod
    def from_nir(cls, node, dt):
        """NIR's ``CubaLIF``: ``tau_syn di/dt = -i + w_in I`` and ``tau_mem dv/dt = -v +
        r i`` stepped with ``dt`` are this neuron with decays ``1 - dt / tau`` and the input
        gain ``w_in dt / tau_syn * r dt / tau_mem`` (the current scaled by the second
        factor, so the membrane adds it unscaled). ``v_leak != 0`` is refused."""
        f = _nir_fields
        if np.any(f.finite("v_leak", node.v_leak) != 0):
            raise ValueError("CubaLIF with v_leak != 0 has no snetx neuron")
        v_th, v_reset = cls._nir_reset(node)
        tau_syn = f.channel_values("tau_syn", node.tau_syn)
        tau_mem = f.channel_values("tau_mem", node.tau_mem)
        k_syn, k_mem = f.decay("tau_syn", tau_syn, dt), f.decay("tau_mem", tau_mem, dt)
        scale = (f.channel_values("w_in", node.w_in) * dt / tau_syn
                 * f.channel_values("r", node.r) * dt / tau_mem)  # fmt: skip
        if f.one_value(k_syn) is not None and f.one_value(k_mem) is not None:
            cuba = cls(tau_syn=1.0 / f.one_value(k_syn), tau=1.0 / f.one_value(k_mem),
                       v_th=v_th, v_reset=v_reset)  # fmt: skip
            return cuba, scale, np.zeros_like(scale)
        channels = max(k_syn.size, k_mem.size)
        cuba = cls(tau_syn=2.0, tau=2.0, v_th=v_th, v_reset=v_reset, learn=True,
                   channels=channels)  # fmt: skip
        f.set_learned(cuba, "w_tau_syn", np.broadcast_to(k_syn, (channels,)))
        f.set_learned(cuba, "w", np.broadcast_to(k_mem, (channels,)))
        return cuba, scale, np.zeros_like(scale)


@_shared_args
class ALIF(SpikingNeuron):
    r"""LIF with an adaptive threshold (Bellec et al. 2018, LSNN; Yin et al. 2021): every
    spike raises the threshold by ``beta``, decaying with ``tau_adapt``.

    From the state :math:`(u, a)[-1]` (rest, 0) and, elementwise:

    .. math::
        h[t] &= u[t-1] / \tau + x[t] \\
        \theta[t] &= v_{th} + \beta\, a[t-1] \\
        s[t] &= \Theta(h[t] - \theta[t])            \quad\text{(surrogate at } h - \theta) \\
        u[t] &= h[t] (1 - s[t]) + v_{reset}\, s[t]   \quad\text{(soft: } h[t] - \theta[t] s[t]) \\
        a[t] &= a[t-1] / \tau_{adapt} + s[t]

    Args:
        tau (float): membrane time constant, ``>= 1``. Default 2.
        tau_adapt (float): adaptation time constant, ``>= 1``. Default 20.
        beta (float): threshold increase per unit of adaptation, ``>= 0``. Default 1.8.
        (the arguments every neuron shares)

    Shape:
        - Input: :math:`(N, T, *)`, floating point. Output: spikes of the same shape.
        - State: :class:`snetx.snn.family.ALIFState` ``(u, a)``, each :math:`(N, *)`.

    Example::

        >>> import torch
        >>> from snetx.snn import neuron
        >>> alif = neuron.ALIF(tau=2.0, tau_adapt=20.0, beta=1.8)
        >>> alif(torch.full((1, 6, 1), 1.2)).flatten().tolist()  # the threshold climbs
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    """

    description = family.ALIF

    def __init__(
        self,
        tau=2.0,
        tau_adapt=20.0,
        beta=1.8,
        v_th=1.0,
        v_reset=0.0,
        sg=arc_tan,
        alpha=4.0,
        detach=False,
        stateful=False,
        *,
        learn=False,
        channels=None,
        backend=None,
    ):
        if checks.check_real("beta", beta) < 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        super().__init__(
            *(v_th, v_reset, sg, alpha, detach, stateful),
            taus={"tau": tau, "tau_adapt": tau_adapt},
            consts={"beta": beta},
            learn=learn,
            channels=channels,
            backend=backend,
        )
