"""Independent references for the tests: the LIF and surrogate equations (docs/specification.md)
written out directly, nothing from snetx."""

import math

import torch

# the surrogate table (docs/specification.md), σ'(z; α), written from the table.
DERIVATIVES = {
    "arctan": lambda z, a: a / (2 * (1 + (math.pi / 2 * a * z) ** 2)),
    "sigmoid": lambda z, a: a * torch.sigmoid(a * z) * (1 - torch.sigmoid(a * z)),
    "rectangular": lambda z, a: torch.where(z.abs() < 1 / (2 * a), a, 0.0).to(z.dtype),
    "triangle": lambda z, a: torch.clamp(a - a * a * z.abs(), min=0.0),
    "fast_sigmoid": lambda z, a: 1 / (1 + a * z.abs()) ** 2,
    "ste": lambda z, a: torch.ones_like(z),
}


def heaviside(derivative):
    """An autograd step function Θ(z) (fires at z >= 0) with the given surrogate derivative."""

    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, a):
            ctx.save_for_backward(z)
            ctx.a = a
            return (z >= 0).to(z.dtype)

        @staticmethod
        def backward(ctx, g):
            (z,) = ctx.saved_tensors
            return g * derivative(z, ctx.a), None

    return Step


def lif_reference(x, tau, v_th, v_reset, name, alpha, detach):
    """The three lines of the LIF equations (docs/specification.md) as a plain autograd loop."""
    step = heaviside(DERIVATIVES[name])
    u = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        h = u / tau + x[:, t]
        s = step.apply(h - v_th, alpha)
        r = s.detach() if detach else s
        u = h * (1 - r) + v_reset * r
        out.append(s)
    return torch.stack(out, 1)


def lif_backward_by_hand(x, grad_s, tau, v_th, v_reset, name, alpha, detach):
    """The backward recursion of the LIF equations (docs/specification.md), evaluated
    numerically (no autograd) in float64."""
    d = DERIVATIVES[name]
    x, grad_s = x.double(), grad_s.double()
    T = x.shape[1]
    hs, u = [], torch.zeros_like(x[:, 0])
    for t in range(T):
        h = u / tau + x[:, t]
        s = (h >= v_th).double()
        u = h * (1 - s) + v_reset * s
        hs.append(h)
    g_x = torch.zeros_like(x)
    g_u = torch.zeros_like(x[:, 0])
    for t in reversed(range(T)):
        h = hs[t]
        sp = d(h - v_th, alpha)
        s = (h >= v_th).double()
        du_dh = (1 - s) if detach else (1 - s) + (v_reset - h) * sp
        g_h = grad_s[:, t] * sp + g_u * du_dh
        g_x[:, t] = g_h
        g_u = g_h / tau
    return g_x


def lif_reference_state(x, decay, v_th, v_reset, name, alpha, detach, u0=None):
    """The charge/fire/reset lines from the state ``u0`` (None: rest) as a plain autograd
    loop; ``decay`` a number or a tensor (0-dim, or one value per channel of dim 2, which
    may require grad); ``v_reset=None`` resets by subtraction. Returns (spikes, u_last)."""
    step = heaviside(DERIVATIVES[name])
    u = torch.zeros_like(x[:, 0]) if u0 is None else u0
    if isinstance(decay, torch.Tensor) and decay.dim() == 1:
        decay = decay.view(-1, *([1] * (x.dim() - 3)))
    out = []
    for t in range(x.shape[1]):
        h = decay * u + x[:, t]
        s = step.apply(h - v_th, alpha)
        r = s.detach() if detach else s
        u = h - v_th * r if v_reset is None else h * (1 - r) + v_reset * r
        out.append(s)
    return torch.stack(out, 1), u


class PlainStep(torch.autograd.Function):
    """A surrogate Function without ``derivative()`` (straight-through backward): snetx
    runs such surrogates through its plain autograd loop."""

    @staticmethod
    def forward(ctx, z, alpha):
        return (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, g):
        return g, None
