r"""Functional multi-step LIF: the public functions.

:func:`lif` validates its arguments and runs the neuron; :func:`run` is the single
dispatch point on validated arguments (the fused path of :mod:`snetx.snn._fused`, or the
plain autograd loop :func:`lif_loop` for surrogates without ``derivative``). The
parameter checks live in :mod:`snetx.snn.checks` and are re-exported here.
"""

from typing import NamedTuple, Optional

import torch

from . import _host_kernel, family
from . import surrogate as _sg
from ._fused import Fused, Rule, forward_no_graph, records_graph, state_dtype
from .checks import check_alpha, check_input, check_params, describe_alpha, resolve_alpha

__all__ = [
    "lif",
    "lif_loop",
    "run",
    "run_state",
    "run_neuron",
    "register_backend",
    "make_rule",
    "BACKENDS",
    "reset_net",
    "feature_decay",
    "Fused",
    "set_cpu_kernel",
    "check_params",
    "check_alpha",
    "resolve_alpha",
    "describe_alpha",
    "check_input",
]


def _decay_view(k, x_t):
    """k (0-dim, or C values along dim 1 of a step ``N x C x ...``) shaped to broadcast."""
    return k if k.dim() == 0 else k.view(-1, *([1] * (x_t.dim() - 2)))


def lif_loop(x, tau, v_th, v_reset, sg, alpha, detach, *, u0=None, k=None, return_state=False):
    """The plain autograd loop of the LIF equations (:func:`snetx.snn.family.loop` of
    the LIF's step); used for surrogates without ``derivative``. ``v_reset=None`` resets
    by subtraction; ``k`` (a tensor: 0-dim, or one value per channel of dim 2) replaces
    the decay ``1/tau``."""
    decay = 1.0 / tau if k is None else _decay_view(k, x[:, 0])
    out, state = family.loop(
        family.LIF, x, (decay,), (v_th, 0.0 if v_reset is None else v_reset),
        v_reset is None, sg, alpha, detach, None if u0 is None else (u0,),
    )  # fmt: skip
    return (out, state.u) if return_state else out


def feature_decay(k, x):
    """A learnable decay ``k`` (0-dim, or ``C`` values along dim 2 of ``x``) as one value
    per feature of ``x[:, 0]`` (flattened), the form every kernel reads. Built with
    ``expand`` so that its backward is a plain sum."""
    features = x[0, 0].numel()
    if k.dim() == 0:
        return k.expand(features)
    channels = k.shape[0]
    if x.dim() < 3 or x.shape[2] != channels:
        raise ValueError(
            f"PLIF(channels={channels}) expects N x T x {channels} x ..., "
            f"got shape {tuple(x.shape)}"
        )
    return k.view(channels, 1).expand(channels, features // channels).reshape(features)


def step_shape(x):
    """The shape of one time step of ``x`` (``N x ...``), also for T = 0."""
    return (x.shape[0], *x.shape[2:])


def _check_state(desc, state0, x):
    """``state0`` as a tuple of the neuron's state tensors, or None (rest)."""
    if state0 is None:
        return None
    names = desc.states
    if isinstance(state0, torch.Tensor) and len(names) == 1:
        state0 = (state0,)
    if not isinstance(state0, (tuple, list)) or len(state0) != len(names):
        raise TypeError(
            f"the state of {desc.name} is ({', '.join(names)}): pass "
            f"snetx.snn.family.{desc.state.__name__}(...) or None, got {type(state0).__name__}"
        )
    for name, t in zip(names, state0):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state {name} must be a tensor, got {type(t).__name__}")
        if tuple(t.shape) != step_shape(x):
            raise ValueError(
                f"state {name} has shape {tuple(t.shape)}, but the input's N x ... is "
                f"{step_shape(x)}"
            )
        _check_like(t, x, f"state {name}" if len(names) > 1 else "u0")
    return desc.state(*state0)


def _check_like(t, x, name):
    """A state or parameter tensor must live where the input does and be real floating
    point: a kernel would otherwise read a pointer of another device, or the call would
    silently ignore it."""
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device}, but the input is on {x.device}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


class Call(NamedTuple):
    """One call's tensors in the form every backend's kernels take: ``st0`` (the state,
    ``STATES x N x F``, or None for rest) and ``kf`` (every decay per feature, ``DECAYS x
    F``, learned ones with their graph); ``empty`` holds the result already when the input
    has no elements; ``state0`` is the checked state as the neuron's named tuple (or
    None), for the plain loop."""

    st0: Optional[torch.Tensor]
    kf: Optional[torch.Tensor]
    empty: Optional[tuple]
    state0: Optional[tuple] = None


def _is_learned(k):
    return isinstance(k, torch.Tensor)


def prepare_call(desc, x, state0=None, k=()):
    """Check ``state0`` and the decays ``k`` (numbers, or learned tensors: 0-dim or one per
    channel of dim 2) against ``x`` and flatten them for the kernels (shared by the
    backends). For an empty ``x`` (N = 0 or T = 0) the result is ready: empty spikes, like
    torch ops, and the state unchanged."""
    state0 = _check_state(desc, state0, x)
    for name, kd in zip(desc.decays, k):
        if _is_learned(kd):
            _check_like(kd, x, f"the learnable decay of {name}")
    state = state_dtype(x.dtype)
    if x.numel() == 0:
        rest = torch.zeros(step_shape(x), dtype=state, device=x.device)
        same = state0 if state0 is not None else desc.state(*([rest] * len(desc.states)))
        return Call(None, None, (x.mul(0), same), state0)
    features = x[0, 0].numel()
    kf = torch.stack([
        feature_decay(kd, x).to(state) if _is_learned(kd)
        else torch.full((features,), kd, dtype=state, device=x.device)
        for kd in k
    ])  # fmt: skip
    st0 = None
    if state0 is not None:
        st0 = torch.stack([t.reshape(x.shape[0], -1) for t in state0])
    return Call(st0, kf, None, state0)


def make_rule(desc, consts, soft, sg, alpha, detach, last=True):
    """The kernels' :class:`~snetx.snn._fused.Rule`: the constants as floats, ``v_reset``
    (the second) 0 when the reset is soft."""
    consts = tuple(0.0 if (soft and i == 1) else float(c) for i, c in enumerate(consts))
    return Rule(desc, consts, bool(soft), sg, alpha, bool(detach), bool(last))


#: Registered backends: (neuron name, backend name) -> ``fn(x, st0, kf, rule)`` returning
#: ``(spikes, st_last)`` with ``st_last`` ``STATES x N x F`` (the torch backend here;
#: snetx.cuend registers "cuda" for each neuron it implements).
BACKENDS = {}


def register_backend(neuron, backend, fn):
    """Register ``fn`` as how ``backend`` runs the neuron named ``neuron``."""
    family.get(neuron)
    BACKENDS[(neuron, backend)] = fn


def _run_torch(x, st0, kf, rule):
    if records_graph(x, st0, kf):
        return Fused.apply(x, st0, kf, rule)
    return forward_no_graph(x, rule, st0, kf)


for _name in family.NEURONS:
    register_backend(_name, "torch", _run_torch)


def _loop_decay(kd, x):
    return _decay_view(kd, x[:, 0]) if _is_learned(kd) else kd


def run_neuron(desc, x, k, consts, soft, sg, alpha, detach, fused=True, state0=None,
               backend="torch", last=True):  # fmt: skip
    """(spikes, final state): the single dispatch point of every neuron, on validated
    arguments. ``desc`` is a :class:`snetx.snn.family.Description`, ``k`` its decays
    (numbers, or learned tensors), ``consts`` its constants (``v_reset`` ignored when
    ``soft``), ``alpha`` a number; ``fused`` (``surrogate.has_derivative(sg)``, decided
    once outside any compiled region) False runs the plain autograd loop, as does
    ``torch.compile`` tracing the torch backend. ``state0`` None is rest. ``last`` False:
    the caller does not read the final state, which may then be None."""
    check_input(x)
    key = (desc.name, backend)
    if key not in BACKENDS:
        have = sorted(b for n, b in BACKENDS if n == desc.name)
        raise ValueError(
            f"no backend {backend!r} for neuron {desc.name!r} (registered: {', '.join(have)})"
            + ("; import snetx.cuend (pip install snetx-cuda)" if backend == "cuda" else "")
        )
    check = getattr(BACKENDS[key], "check_input", None)
    if check is not None:
        check(x)
    call = prepare_call(desc, x, state0, k)
    if call.empty is not None:
        return call.empty
    rule = make_rule(desc, consts, soft, sg, alpha, detach, last)
    if backend == "torch" and (not fused or torch.compiler.is_compiling()):
        decays = tuple(_loop_decay(kd, x) for kd in k)
        return family.loop(desc, x, decays, rule.consts, soft, sg, alpha, detach, call.state0)
    spikes, st_last = BACKENDS[key](x, call.st0, call.kf, rule)
    if st_last is None:
        return spikes, None
    shape = step_shape(x)
    return spikes, desc.state(*(t.view(shape) for t in st_last.unbind(0)))


def run_state(x, tau, v_th, v_reset, sg, alpha, detach, fused, u0=None, k=None, last=True):
    """(spikes, u_last) of the LIF: :func:`run_neuron` with the LIF's arguments
    (``v_reset`` None for the soft reset, ``k`` None or a learnable decay; ``last`` False:
    ``u_last`` may be None)."""
    decay = 1.0 / tau if k is None else k
    spikes, state = run_neuron(
        family.LIF, x, (decay,), (v_th, v_reset), v_reset is None, sg, alpha, detach, fused,
        None if u0 is None else (u0,), last=last,
    )  # fmt: skip
    return spikes, None if state is None else state.u


def run(x, tau, v_th, v_reset, sg, alpha, detach, fused):
    """Spikes of :func:`run_state` from rest (the original dispatch point)."""
    return run_state(x, tau, v_th, v_reset, sg, alpha, detach, fused, last=False)[0]


def lif(
    x,
    tau=2.0,
    v_th=1.0,
    v_reset=0.0,
    sg="arctan",
    alpha=4.0,
    detach=False,
    *,
    u0=None,
    return_state=False,
):
    r"""Multi-step LIF on ``x`` of shape ``N x T x ...``; returns spikes of the same shape.

    See :class:`snetx.snn.neuron.LIF` for the equations. ``sg`` is a surrogate name or
    Function, ``alpha`` a number or zero-argument callable (read once here);
    ``v_reset=None`` resets by subtraction. ``u0`` (shape ``x[:, 0].shape``) is the state
    to start from (None: rest); with ``return_state=True`` the result is
    ``(spikes, u_last)``, the state after the last step, which the next chunk of the
    sequence can start from: gradients flow through it.

    Example::

        >>> import torch
        >>> from snetx.snn.functional import lif
        >>> lif(torch.tensor([[0.6, 0.6, 0.6, 1.2]]).unsqueeze(-1), tau=2.0).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
        >>> x = torch.tensor([[0.6, 0.6, 0.6, 1.2]]).unsqueeze(-1)
        >>> s1, u = lif(x[:, :2], return_state=True)            # the first two steps ...
        >>> s2 = lif(x[:, 2:], u0=u)                             # ... then the rest
        >>> torch.cat([s1, s2], 1).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    tau, v_th, v_reset = check_params(tau, v_th, v_reset)
    sg = _sg.get(sg)
    alpha = resolve_alpha(check_alpha(alpha))
    spikes, u_last = run_state(
        x, tau, v_th, v_reset, sg, alpha, bool(detach), _sg.has_derivative(sg), u0=u0,
        last=bool(return_state),
    )  # fmt: skip
    return (spikes, u_last) if return_state else spikes


def reset_net(module: torch.nn.Module) -> None:
    """Return every stateful neuron in ``module`` (itself included) to rest: call it
    between independent sequences (samples of a stream)."""
    for m in module.modules():
        reset = getattr(m, "reset", None)
        if getattr(m, "is_spiking_neuron", False) and callable(reset):
            reset()


def set_cpu_kernel(mode: str) -> None:
    """Choose the CPU path of the fused LIF: ``"auto"`` (the host C++ kernel when a
    compiler can build it, else eager torch ops), ``"host"`` (raise if it cannot be built;
    ``"compiled"`` is accepted too) or ``"eager"``. The environment variable
    ``SNETX_CPU_KERNEL`` sets the default. The host kernel handles float32/float64 and the
    registered surrogates; other dtypes and custom surrogates always use the eager path."""
    _host_kernel.set_mode(mode)
