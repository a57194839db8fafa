r"""Layers built around the neurons of :mod:`snetx.snn.neuron`."""

import math

import torch
from torch import nn

from . import _fused, checks
from . import functional as F

__all__ = ["Recurrent"]


class Recurrent(nn.Module):
    r"""Recurrence around any neuron of the family: each step's input gets the previous
    step's spikes through a learned ``features x features`` matrix (Yin et al. 2021's
    SRNN layers; snnTorch ``RLeaky``/``RSynaptic`` with ``all_to_all``).

    From :math:`s[-1] = 0` (unless the state is kept) and for :math:`t = 0 \dots T-1`:

    .. math::
        x_{in}[t] = x[t] + W_{rec}\, s[t-1] \; (+\, b_{rec}), \qquad
        s[t] = \text{the neuron's step on } x_{in}[t]

    Backward is BPTT through both paths (the neuron's state and the recurrent spikes).
    On the torch backend the whole sequence is one autograd node: the forward runs the
    neuron's kernel step by step without a graph and keeps each step's input and the
    state before it; the backward walks time down once, with one matrix product per step
    for the recurrent spikes' gradient and one for the whole ``W_rec`` gradient. Other
    backends (and ``torch.compile``) run the neuron step by step under autograd. The
    neuron's ``stateful`` flag decides whether a call starts from
    the state (the last spikes with the neuron's state, in ``.state``) the previous one
    left, so a sequence fed in chunks gives the spikes and gradients of one call.
    :func:`snetx.snn.functional.reset_net` resets it.

    Args:
        neuron: a neuron module of the family (:class:`~snetx.snn.neuron.LIF`,
            :class:`~snetx.snn.neuron.CubaLIF`, :class:`~snetx.snn.neuron.ALIF`, ...).
        features (int): the number of neurons (the input's last dim).
        bias (bool): add a learned ``b_rec``. Default False.

    Shape:
        - Input: :math:`(N, T, features)`. Output: spikes of the same shape.

    Example::

        >>> import torch
        >>> from snetx.snn import layer, neuron
        >>> rec = layer.Recurrent(neuron.ALIF(tau_adapt=10.0), 3)
        >>> with torch.no_grad():
        ...     _ = rec.weight.copy_(torch.eye(3).roll(1, 0) * 2)  # each feeds the next
        >>> rec(torch.tensor([[[1.5, 0.0, 0.0], [0.0] * 3, [0.0] * 3]])).squeeze(0).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    is_spiking_neuron = True

    def __init__(self, neuron, features, bias=False):
        super().__init__()
        if not getattr(neuron, "is_spiking_neuron", False) or not hasattr(neuron, "description"):
            raise TypeError(
                f"Recurrent wraps a neuron of snetx.snn.neuron (LIF, CubaLIF, ALIF, ...), "
                f"got {type(neuron).__name__}"
            )
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"features must be an int >= 1, got {features!r}")
        self.neuron, self.features = neuron, features
        self.weight = nn.Parameter(torch.empty(features, features))
        self.bias = nn.Parameter(torch.empty(features)) if bias else None
        bound = 1 / math.sqrt(features)  # as nn.Linear
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        #: (last spikes, the neuron's state) after the last call when stateful; None: rest
        self.state = None

    @property
    def stateful(self):
        return self.neuron.stateful

    @stateful.setter
    def stateful(self, value):
        self.neuron.stateful = value

    def reset(self):
        self.state = None
        self.neuron.reset()

    def detach_state(self):
        if self.state is not None:
            s, st = self.state
            self.state = (s.detach(), type(st)(*(t.detach() for t in st)))

    def forward(self, x):
        checks.check_input(x)
        if x.dim() != 3 or x.shape[2] != self.features:
            raise ValueError(
                f"Recurrent(features={self.features}) expects N x T x {self.features}, "
                f"got shape {tuple(x.shape)}"
            )
        m = self.neuron
        alpha = checks.resolve_alpha(m.alpha)
        s0, st0 = self._start(x)
        if x.shape[1] == 0:
            return x.mul(0)
        run = self._fused if self._can_fuse(x) else self._stepwise
        spikes, st = run(x, alpha, s0, st0)
        if self.stateful:
            self.state = (spikes[:, -1], st)
        return spikes

    def _can_fuse(self, x):
        m = self.neuron
        return m.backend == "torch" and m._fused and not torch.compiler.is_compiling()

    def _fused(self, x, alpha, s0, st0):
        m = self.neuron
        rule = F.make_rule(m.description, m._consts(), m.v_reset is None, m.sg, alpha, m.detach)
        call = F.prepare_call(m.description, x, st0, m._decays())
        bias = None if self.bias is None else self.bias.to(x.dtype)
        spikes, st_last = _RecurrentFused.apply(
            x, self.weight.to(x.dtype), bias, call.st0, s0, call.kf, rule
        )
        return spikes, m.description.state(*st_last.unbind(0))

    def _stepwise(self, x, alpha, s, st):
        m = self.neuron
        decays, consts = m._decays(), m._consts()
        weight = self.weight.to(x.dtype)
        spikes = []
        for t in range(x.shape[1]):
            x_in = x[:, t] if s is None else torch.addmm(x[:, t], s.to(x.dtype), weight.t())
            if self.bias is not None:
                x_in = x_in + self.bias.to(x.dtype)
            out, st = F.run_neuron(
                *(m.description, x_in.unsqueeze(1), decays, consts, m.v_reset is None),
                *(m.sg, alpha, m.detach, m._fused, st, m.backend),
            )
            s = out.squeeze(1)
            spikes.append(s)
        return torch.stack(spikes, 1), st

    def _start(self, x):
        if not self.stateful or self.state is None:
            return None, None
        s, st = self.state
        if s.shape != (x.shape[0], self.features) or s.device != x.device:
            raise ValueError(
                f"Recurrent keeps a state for N = {s.shape[0]} on {s.device}, but this input "
                f"has N = {x.shape[0]} on {x.device}: call reset() (or "
                "snetx.snn.functional.reset_net(model)) between sequences of different shapes"
            )
        return s, st

    def extra_repr(self):
        return f"features={self.features}, bias={self.bias is not None}"


class _RecurrentFused(torch.autograd.Function):
    """``apply(x, weight, bias, st0, s0, kf, rule)`` -> (spikes ``N x T x F``, st_last
    ``STATES x N x F``) for the torch backend. Saved: each step's input ``x_in``, the
    spikes and the state before every step (``STATES`` tensors of the input's size)."""

    @staticmethod
    def forward(ctx, x, weight, bias, st0, s0, kf, rule):
        ctx.set_materialize_grads(False)
        n, T, f = x.shape
        state = _fused.state_dtype(x.dtype)
        xt = x.detach().transpose(0, 1)
        w_t = weight.detach().t()
        x_in = torch.empty((T, n, f), dtype=x.dtype, device=x.device)
        spikes = torch.empty((T, n, f), dtype=x.dtype, device=x.device)
        states = torch.zeros((T + 1, len(rule.desc.states), n, f), dtype=state, device=x.device)
        if st0 is not None:
            states[0] = st0
        s = None if s0 is None else s0.detach().to(x.dtype)
        for t in range(T):
            xi = x_in[t]
            if s is None:
                xi.copy_(xt[t])
            else:
                torch.addmm(xt[t], s, w_t, out=xi)
            if bias is not None:
                xi.add_(bias.detach())
            sp, st_last, _ = _fused._forward_untraced(xi.view(n, 1, f), rule, states[t], kf)
            states[t + 1] = st_last
            spikes[t] = sp.view(n, f)
            s = spikes[t]
        ctx.save_for_backward(x_in, spikes, states, weight, s0, kf)
        ctx.rule, ctx.has_bias, ctx.has_st0 = rule, bias is not None, st0 is not None
        return spikes.transpose(0, 1), states[T].clone()

    @staticmethod
    def backward(ctx, g_out, g_stlast):
        x_in, spikes, states, weight, s0, kf = ctx.saved_tensors
        rule = ctx.rule
        T, n, f = x_in.shape
        w = weight.detach()
        host = _fused._use_host_kernel(x_in, rule)
        want_k = ctx.needs_input_grad[5]
        g_xin = torch.empty_like(x_in)
        g_k = torch.zeros_like(kf, dtype=states.dtype) if want_k else None
        g_st = g_stlast
        g_out_t = None if g_out is None else g_out.transpose(0, 1)
        with torch.no_grad():
            for t in range(T - 1, -1, -1):
                gs = torch.zeros((n, f), dtype=x_in.dtype, device=x_in.device) if g_out_t is None \
                    else g_out_t[t]  # fmt: skip
                if t + 1 < T:  # x_in[t + 1] = ... + s[t] W^T
                    gs = torch.addmm(gs, g_xin[t + 1], w)
                args = (x_in[t].view(n, 1, f), gs.reshape(n, 1, f), g_st, states[t], kf, rule)
                if host:
                    gx, g_st, gk = _fused._backward_host(*args, want_k, want_st0=True)
                else:
                    gx, g_st, gk = _fused._backward_eager(*args)
                g_xin[t] = gx.view(n, f)
                if want_k:
                    g_k += gk
            grad_w = grad_b = grad_s0 = None
            if ctx.needs_input_grad[1]:
                grad_w = g_xin[1:].reshape(-1, f).t() @ spikes[:-1].reshape(-1, f)
                if s0 is not None:
                    grad_w = torch.addmm(grad_w, g_xin[0].t(), s0.to(g_xin.dtype))
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_b = g_xin.sum((0, 1))
            if s0 is not None and ctx.needs_input_grad[4]:
                grad_s0 = (g_xin[0] @ w).to(s0.dtype)
        grad_st0 = g_st if ctx.has_st0 and ctx.needs_input_grad[3] else None
        grads = (g_xin.transpose(0, 1), grad_w, grad_b, grad_st0, grad_s0,
                 None if g_k is None else g_k.to(kf.dtype))  # fmt: skip
        links = (x_in, g_out, g_stlast, weight, s0, kf)
        return (*_fused.no_double_backward(grads, *links), None)
