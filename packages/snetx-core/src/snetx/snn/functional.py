r"""Functional multi-step LIF: the public functions.

:func:`lif` validates its arguments and runs the neuron; :func:`run` is the single
dispatch point on validated arguments (the fused path of :mod:`snetx.snn._fused`, or the
plain autograd loop :func:`lif_loop` for surrogates without ``derivative``). The
parameter checks live in :mod:`snetx.snn.checks` and are re-exported here.
"""

import torch

from . import _host_kernel
from . import surrogate as _sg
from ._fused import FusedLIF, records_graph, spikes_only
from .checks import check_alpha, check_input, check_params, describe_alpha, resolve_alpha

__all__ = [
    "lif",
    "lif_loop",
    "run",
    "FusedLIF",
    "set_cpu_kernel",
    "check_params",
    "check_alpha",
    "resolve_alpha",
    "describe_alpha",
    "check_input",
]


def lif_loop(x, tau, v_th, v_reset, sg, alpha, detach):
    """The plain autograd loop of the LIF equations (docs/specification.md); used for
    surrogates without ``derivative``."""
    u = torch.zeros_like(x[:, 0])
    spikes = []
    for x_t in x.unbind(1):
        h = u / tau + x_t
        s = sg.apply(h - v_th, alpha)
        r = s.detach() if detach else s
        u = h * (1 - r) + v_reset * r
        spikes.append(s)
    return torch.stack(spikes, dim=1)


def run(x, tau, v_th, v_reset, sg, alpha, detach, fused):
    """The single dispatch point, on validated arguments (``alpha`` a number):
    the fused path, or the plain loop for a surrogate without ``derivative``
    (``fused = surrogate.has_derivative(sg)``, decided once, outside any compiled region)."""
    check_input(x)
    if x.numel() == 0:  # N = 0 or T = 0 (or an empty feature dim): empty spikes, like torch ops
        return x.mul(0)
    if fused:
        if records_graph(x):
            return FusedLIF.apply(x, tau, v_th, v_reset, sg, alpha, detach)
        return spikes_only(x, tau, v_th, v_reset, sg)
    return lif_loop(x, tau, v_th, v_reset, sg, alpha, detach)


def lif(x, tau=2.0, v_th=1.0, v_reset=0.0, sg="arctan", alpha=4.0, detach=False):
    r"""Multi-step LIF on ``x`` of shape ``N x T x ...``; returns spikes of the same shape.

    See :class:`snetx.snn.neuron.LIF` for the equations. ``sg`` is a surrogate name or
    Function, ``alpha`` a number or zero-argument callable (read once here).

    Example::

        >>> import torch
        >>> from snetx.snn.functional import lif
        >>> lif(torch.tensor([[0.6, 0.6, 0.6, 1.2]]).unsqueeze(-1), tau=2.0).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    tau, v_th, v_reset = check_params(tau, v_th, v_reset)
    sg = _sg.get(sg)
    alpha = resolve_alpha(check_alpha(alpha))
    return run(x, tau, v_th, v_reset, sg, alpha, bool(detach), _sg.has_derivative(sg))


def set_cpu_kernel(mode: str) -> None:
    """Choose the CPU path of the fused LIF: ``"auto"`` (the host C++ kernel when a
    compiler can build it, else eager torch ops), ``"host"`` (raise if it cannot be built;
    ``"compiled"`` is accepted too) or ``"eager"``. The environment variable
    ``SNETX_CPU_KERNEL`` sets the default. The host kernel handles float32/float64 and the
    registered surrogates; other dtypes and custom surrogates always use the eager path."""
    _host_kernel.set_mode(mode)
