r"""Functional multi-step LIF (SPEC §2): validation, the fused torch path, the plain loop.

The fused path runs the forward without building an autograd graph, saves one tensor
(the charged potential ``h``, kept in float32 or float64) and implements the backward
as one reverse-time loop of SPEC §2. Surrogates that do not expose ``derivative`` fall
back to the plain autograd loop.
"""

import math
import numbers

import torch

from . import surrogate as _sg

__all__ = ["lif", "lif_loop", "run", "FusedLIF", "check_params", "check_alpha", "resolve_alpha", "check_input"]


def check_params(tau, v_th, v_reset):
    """Validate the neuron's constants; return them as floats."""
    for name, value in (("tau", tau), ("v_th", v_th), ("v_reset", v_reset)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if tau < 1:
        raise ValueError(f"tau must be >= 1 (1 means no leak, i.e. IF), got {tau!r}")
    if not v_reset < v_th:
        raise ValueError(f"v_reset must be < v_th, got v_reset={v_reset!r}, v_th={v_th!r}")
    return float(tau), float(v_th), float(v_reset)


def check_alpha(alpha):
    """alpha must be a real number or a zero-argument callable returning one."""
    if callable(alpha):
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(
            f"alpha must be a number or a zero-argument callable returning one, got {alpha!r}"
        )
    resolve_alpha(alpha)
    return alpha


def resolve_alpha(alpha) -> float:
    """Read ``alpha`` once (call it when callable) and check it is a finite positive number."""
    value = alpha() if callable(alpha) else alpha
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"alpha must give a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"alpha must be finite and > 0, got {value!r}")
    return value


def check_input(x):
    """A spiking input is a floating tensor ``N x T x ...`` (at least 2 dims)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"input must have at least 2 dims (N x T x ...), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")


def _state_dtype(dtype):
    # 16-bit inputs keep their membrane state in float32, like the CUDA kernels.
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class FusedLIF(torch.autograd.Function):
    """``apply(x, tau, v_th, v_reset, sg, alpha, detach)`` -> spikes; see the module doc."""

    @staticmethod
    def forward(ctx, x, tau, v_th, v_reset, sg, alpha, detach):
        state = _state_dtype(x.dtype)
        decay = 1.0 / tau
        # h for all steps in one buffer: the only tensor saved for backward.
        u = torch.zeros_like(x[:, 0], dtype=state)
        if torch.compiler.is_compiling():
            # Dynamo cannot trace out= into a view; Inductor fuses this form anyway.
            hs = []
            for x_t in x.unbind(1):
                h = x_t + u * decay
                u = h.masked_fill(h >= v_th, v_reset)
                hs.append(h)
            h_all = torch.stack(hs, 1)
        else:
            h_all = torch.empty(x.shape, dtype=state, device=x.device)
            for t in range(x.shape[1]):
                h = torch.add(x[:, t], u, alpha=decay, out=h_all[:, t])
                u = h.masked_fill(h >= v_th, v_reset)
        ctx.save_for_backward(h_all)
        ctx.params = (decay, v_th, v_reset, sg, alpha, detach)
        return (h_all >= v_th).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_s):
        (h_all,) = ctx.saved_tensors
        decay, v_th, v_reset, sg, alpha, detach = ctx.params
        z = h_all - v_th
        sg_d = sg.derivative(z, alpha)
        keep = (z < 0).to(h_all.dtype)  # 1 - s
        # du/dh for every step at once; the loop below then is one fused op per step.
        du_dh = keep if detach else torch.addcmul(keep, v_reset - h_all, sg_d)
        grad_h = grad_s.to(h_all.dtype) * sg_d
        # g_h[t] = g_s[t] sg'[t] + decay * g_h[t+1] * du/dh[t], in place over time.
        if torch.compiler.is_compiling():
            g = grad_h[:, -1]
            gs = [g]
            for t in range(h_all.shape[1] - 2, -1, -1):
                g = grad_h[:, t] + g * du_dh[:, t] * decay
                gs.append(g)
            grad_h = torch.stack(gs[::-1], 1)
        else:
            for t in range(h_all.shape[1] - 2, -1, -1):
                grad_h[:, t].addcmul_(grad_h[:, t + 1], du_dh[:, t], value=decay)
        return grad_h.to(grad_s.dtype), None, None, None, None, None, None


def lif_loop(x, tau, v_th, v_reset, sg, alpha, detach):
    """The plain autograd loop of SPEC §2 (used for surrogates without ``derivative``)."""
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
    if fused:
        return FusedLIF.apply(x, tau, v_th, v_reset, sg, alpha, detach)
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
