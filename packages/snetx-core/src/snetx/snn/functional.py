r"""Functional multi-step LIF: the public functions.

:func:`lif` validates its arguments and runs the neuron; :func:`run` is the single
dispatch point on validated arguments (the fused path of :mod:`snetx.snn._fused`, or the
plain autograd loop :func:`lif_loop` for surrogates without ``derivative``). The
parameter checks live in :mod:`snetx.snn.checks` and are re-exported here.
"""

from typing import NamedTuple, Optional

import torch

from . import _host_kernel
from . import surrogate as _sg
from ._fused import FusedLIF, Rule, forward_no_graph, records_graph
from .checks import check_alpha, check_input, check_params, describe_alpha, resolve_alpha

__all__ = [
    "lif",
    "lif_loop",
    "run",
    "run_state",
    "reset_net",
    "feature_decay",
    "FusedLIF",
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
    """The plain autograd loop of the LIF equations (docs/specification.md); used for
    surrogates without ``derivative``. ``v_reset=None`` resets by subtraction; ``k`` (a
    tensor: 0-dim, or one value per channel of dim 2) replaces the decay ``1/tau``."""
    u = torch.zeros_like(x[:, 0]) if u0 is None else u0
    spikes = []
    for x_t in x.unbind(1):
        h = (u * _decay_view(k, x_t) if k is not None else u / tau) + x_t
        s = sg.apply(h - v_th, alpha)
        r = s.detach() if detach else s
        u = h - v_th * r if v_reset is None else h * (1 - r) + v_reset * r
        spikes.append(s)
    out = torch.stack(spikes, dim=1)
    return (out, u) if return_state else out


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


def _check_state(u0, x):
    if u0 is None:
        return None
    if not isinstance(u0, torch.Tensor):
        raise TypeError(f"u0 must be a tensor or None, got {type(u0).__name__}")
    if tuple(u0.shape) != step_shape(x):
        raise ValueError(
            f"u0 has shape {tuple(u0.shape)}, but the input's N x ... is {step_shape(x)}"
        )
    _check_like(u0, x, "u0")
    return u0


def _check_like(t, x, name):
    """A state or parameter tensor must live where the input does and be real floating
    point: a kernel would otherwise read a pointer of another device, or the call would
    silently ignore it."""
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device}, but the input is on {x.device}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


class Call(NamedTuple):
    """One call's tensors in the form every backend's kernels take: ``u0f`` (``N x F``
    state, or None for rest) and ``kf`` (one decay per feature, or None for ``1/tau``);
    ``empty`` holds the result already when the input has no elements."""

    u0f: Optional[torch.Tensor]
    kf: Optional[torch.Tensor]
    empty: Optional[tuple]


def prepare_call(x, u0=None, k=None):
    """Check ``u0`` against ``x`` and flatten ``u0``/``k`` for the kernels (shared by the
    backends). For an empty ``x`` (N = 0 or T = 0) the result is ready: empty spikes, like
    torch ops, and the state unchanged."""
    u0 = _check_state(u0, x)
    if x.numel() == 0:
        state = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        rest = torch.zeros(step_shape(x), dtype=state, device=x.device)
        return Call(None, None, (x.mul(0), u0 if u0 is not None else rest))
    if k is not None:
        _check_like(k, x, "the learnable decay (PLIF's k)")
    kf = None if k is None else feature_decay(k, x)
    return Call(None if u0 is None else u0.reshape(x.shape[0], -1), kf, None)


def run_state(x, tau, v_th, v_reset, sg, alpha, detach, fused, u0=None, k=None):
    """(spikes, u_last): the single dispatch point, on validated arguments (``alpha`` a
    number, ``v_reset`` None for the soft reset, ``k`` None or a learnable decay): the
    fused path, or the plain loop for a surrogate without ``derivative`` (``fused =
    surrogate.has_derivative(sg)``, decided once, outside any compiled region)."""
    check_input(x)
    call = prepare_call(x, u0, k)
    if call.empty is not None:
        return call.empty
    if not fused:
        return lif_loop(x, tau, v_th, v_reset, sg, alpha, detach, u0=u0, k=k, return_state=True)
    rule = Rule(1.0 / tau, v_th, v_reset, sg, alpha, detach)
    if records_graph(x, call.u0f, call.kf):
        spikes, u_last = FusedLIF.apply(x, call.u0f, call.kf, rule)
    else:
        spikes, u_last = forward_no_graph(x, rule, call.u0f, call.kf)
    return spikes, u_last.view(step_shape(x))


def run(x, tau, v_th, v_reset, sg, alpha, detach, fused):
    """Spikes of :func:`run_state` from rest (the original dispatch point)."""
    return run_state(x, tau, v_th, v_reset, sg, alpha, detach, fused)[0]


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
        x, tau, v_th, v_reset, sg, alpha, bool(detach), _sg.has_derivative(sg), u0=u0
    )
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
