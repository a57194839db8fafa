r"""The fused LIF's kernel dispatch: one untraced forward (the host C++ kernel where it
applies, else eager torch ops), the traced form for ``torch.compile``, and the autograd
Function whose backward is one reverse-time loop.

Every path takes the same :class:`Rule` (decay, threshold, reset, surrogate) and the same
optional tensors: ``u0`` (the state to start from, ``N x F``; None is rest) and ``kf``
(a learnable decay per feature, length ``F``; None is the rule's fixed decay). Each
returns the spikes and the final state ``u_last``.

The forward builds no autograd graph and saves one tensor of the input's size plus the
small ``u0`` and ``kf``: the input ``x`` itself. The backward recomputes the charges ``h``
from it: in cache on the host kernel (8 bytes per float32 element forward, 12 backward,
no ``h`` written), with one more eager forward on the eager path. Under ``torch.compile``
the traced forward keeps ``h``. Evaluation (no graph to record) keeps nothing. The
backward is not differentiable: a double backward raises :data:`DOUBLE_BACKWARD`.
The backward also gives the gradients of
``u0`` and of ``kf`` (each neuron's share summed over the batch by torch, so the result
has the same bits run to run).
"""

import ctypes
from typing import NamedTuple, Optional

import torch

from . import _host_kernel
from . import surrogate as _sg

__all__ = ["Rule", "FusedLIF", "forward_no_graph", "records_graph", "no_double_backward"]

#: What a second differentiation through a fused neuron says (gradient penalties,
#: ``autograd.grad(..., create_graph=True)`` then ``.backward()``).
DOUBLE_BACKWARD = (
    "snetx: the fused LIF's backward is not differentiable (double backward, e.g. a "
    "gradient penalty through a neuron); use snetx.snn.functional.lif_loop, the plain "
    "autograd loop of the same equations, for second-order gradients"
)


def no_double_backward(grads, *links):
    """``grads`` (a tuple of tensors or None) as returned by a fused backward: unchanged
    when no graph is being built, else aliases whose own backward raises
    :data:`DOUBLE_BACKWARD`. ``links`` are the backward's inputs (the forward's input,
    state and decay, the incoming gradients): the error node hangs below them, so any
    second differentiation that would pass through the neuron -- towards a parameter
    before it, after it, or the input -- fails loudly instead of silently missing the
    neuron's second-order terms."""
    if not torch.is_grad_enabled():
        return grads
    present = [i for i, g in enumerate(grads) if isinstance(g, torch.Tensor)]
    linked = [t for t in links if isinstance(t, torch.Tensor) and t.requires_grad]
    if not present:
        return grads
    inputs = [grads[i].detach().requires_grad_() for i in present] + linked
    err = torch._C._functions.DelayedError(DOUBLE_BACKWARD.encode(), len(inputs))
    aliases = err(*inputs)
    if not isinstance(aliases, tuple):
        aliases = (aliases,)
    out = list(grads)
    for i, a in zip(present, aliases):
        out[i] = a
    return tuple(out)


class Rule(NamedTuple):
    """The validated constants of one call: ``decay = 1 / tau`` (ignored when a ``kf``
    tensor is given), ``v_reset`` None for the soft reset (by subtraction)."""

    decay: float
    v_th: float
    v_reset: Optional[float]
    sg: type
    alpha: float
    detach: bool

    @property
    def soft(self):
        return self.v_reset is None


def _state_dtype(dtype):
    # 16-bit inputs keep their membrane state in float32, like the CUDA kernels.
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# Elements per chunk of the eager CPU path: small enough that a step's temporaries stay
# in cache and are reused by the allocator (a fresh 64 MB tensor costs page faults).
CPU_CHUNK_ELEMENTS = 1 << 16


def _chunks(x3):
    n, _, f = x3.shape
    if x3.device.type != "cpu":
        return [slice(0, f)]  # one launch per op is what matters on accelerators
    step = max(1, CPU_CHUNK_ELEMENTS // max(n, 1))
    return [slice(f0, min(f0 + step, f)) for f0 in range(0, f, step)]


def _reset(h, rule):
    """u from h: the same expression as the forward's, so the backward rounds alike."""
    fired = h >= rule.v_th
    if rule.soft:
        return torch.where(fired, h - rule.v_th, h)
    return h.masked_fill(fired, rule.v_reset)


# ---- eager torch ops ------------------------------------------------------------------


def _forward_eager(x3, rule, u0, kf, state, store_h=True):
    """(h or None, spikes, u_last) on ``N x T x F``; without store_h, h lives in one
    step-sized scratch buffer."""
    n, T, f = x3.shape
    dev = x3.device
    h_all = torch.empty((n, T, f), dtype=state, device=dev) if store_h else None
    spikes = torch.empty((n, T, f), dtype=x3.dtype, device=dev)
    u_last = torch.empty((n, f), dtype=state, device=dev)
    for cols in _chunks(x3):
        u = None if u0 is None else u0[:, cols].to(state)
        k = None if kf is None else kf[cols].to(state)
        if not store_h:
            scratch = torch.empty((n, cols.stop - cols.start), dtype=state, device=dev)
        for t in range(T):
            h = h_all[:, t, cols] if store_h else scratch
            s = spikes[:, t, cols]
            if u is None:
                h.copy_(x3[:, t, cols])
            elif k is None:
                torch.add(x3[:, t, cols], u, alpha=rule.decay, out=h)
            else:
                torch.addcmul(x3[:, t, cols], u, k, out=h)
            torch.ge(h, rule.v_th, out=s)  # float spikes: cheaper than a bool mask on CPU
            if rule.soft:
                u = torch.add(h, s, alpha=-rule.v_th)  # exactly h - v_th where fired
            else:
                u = torch.addcmul(h, h, s, value=-1)  # exactly h or 0
                if rule.v_reset != 0.0:
                    u.add_(s, alpha=rule.v_reset)  # exactly v_reset where fired
        if T == 0 or u is None:
            u_last[:, cols] = 0 if u0 is None else u0[:, cols]
        else:
            u_last[:, cols] = u
    return h_all, spikes, u_last


def _backward_eager(h_all, gs3, g_ulast, u0, kf, rule):
    """(grad_x, grad_u0 or None, per-neuron dL/dk or None) on ``N x T x F``."""
    n, T, f = h_all.shape
    grad_x = torch.empty_like(h_all)
    g_u0 = torch.empty((n, f), dtype=h_all.dtype, device=h_all.device) if u0 is not None else None
    g_k = torch.empty((n, f), dtype=h_all.dtype, device=h_all.device) if kf is not None else None
    for cols in _chunks(h_all):
        decay = rule.decay if kf is None else kf[cols].to(h_all.dtype)
        g_u = None if g_ulast is None else g_ulast[:, cols].to(h_all.dtype)  # dL/du[t]
        for t in range(T - 1, -1, -1):
            h = h_all[:, t, cols]
            z = h - rule.v_th
            sg_d = rule.sg.derivative(z, rule.alpha)
            g = grad_x[:, t, cols]
            torch.mul(gs3[:, t, cols], sg_d, out=g)
            if g_u is not None:
                # g_h[t] += g_u[t] * du/dh[t]
                if rule.soft:
                    du = torch.ones_like(h) if rule.detach else 1 - rule.v_th * sg_d
                else:
                    du = torch.lt(z, 0).to(h.dtype)  # 1 - s
                    if not rule.detach:
                        du.addcmul_(torch.rsub(h, rule.v_reset), sg_d)
                g.addcmul_(g_u, du)
            g_u = g * decay
        if g_u0 is not None:
            g_u0[:, cols] = g_u if g_u is not None else 0
        if g_k is not None:
            gx = grad_x[:, :, cols]
            # dL/dk = sum_t g_h[t] u[t-1], u[t-1] recomputed from h[t-1] (u0 at t = 0)
            acc = (gx[:, 1:] * _reset(h_all[:, :-1, cols], rule)).sum(1) if T > 1 else 0
            first = gx[:, 0] * u0[:, cols].to(h_all.dtype) if u0 is not None and T else 0
            g_k[:, cols] = acc + first
    return grad_x, g_u0, g_k


# ---- traced by torch.compile ----------------------------------------------------------


def _decay_of(kf, rule, x3):
    return rule.decay if kf is None else kf.to(_state_dtype(x3.dtype))


def _forward_traced(x3, rule, u0, kf):
    # Dynamo cannot trace out= into views; Inductor fuses this out-of-place form anyway.
    state = _state_dtype(x3.dtype)
    decay = _decay_of(kf, rule, x3)
    u = torch.zeros_like(x3[:, 0], dtype=state) if u0 is None else u0.to(state)
    hs = []
    for x_t in x3.unbind(1):
        h = x_t + u * decay
        u = _reset(h, rule)
        hs.append(h)
    h_all = torch.stack(hs, 1) if hs else x3.to(state)
    return h_all, (h_all >= rule.v_th).to(x3.dtype), u


def _backward_traced(h_all, gs3, g_ulast, u0, kf, rule):
    decay = _decay_of(kf, rule, h_all)
    z = h_all - rule.v_th
    sg_d = rule.sg.derivative(z, rule.alpha)
    if rule.soft:
        du_dh = torch.ones_like(h_all) if rule.detach else 1 - rule.v_th * sg_d
    else:
        keep = (z < 0).to(h_all.dtype)
        du_dh = keep if rule.detach else keep + (rule.v_reset - h_all) * sg_d
    grad_h = gs3.to(h_all.dtype) * sg_d
    g_u = torch.zeros_like(h_all[:, 0]) if g_ulast is None else g_ulast.to(h_all.dtype)
    gs = []
    for t in range(h_all.shape[1] - 1, -1, -1):
        g = grad_h[:, t] + g_u * du_dh[:, t]
        g_u = g * decay
        gs.append(g)
    grad_x = torch.stack(gs[::-1], 1)
    g_k = None
    if kf is not None:
        prev = _reset(h_all[:, :-1], rule)
        g_k = (grad_x[:, 1:] * prev).sum(1)
        if u0 is not None:
            g_k = g_k + grad_x[:, 0] * u0.to(h_all.dtype)
    return grad_x, (g_u if u0 is not None else None), g_k


# ---- the host C++ kernel --------------------------------------------------------------


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _use_host_kernel(x, sg):
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and _sg.name_of(sg) is not None
        and _host_kernel.available()
    )


def _suffix(dtype):
    return "f32" if dtype == torch.float32 else "f64"


def _small(t, dtype):
    """An optional N x F (or F) tensor as the contiguous state-dtype buffer a kernel reads."""
    return None if t is None else t.detach().to(dtype).contiguous()


def _forward_host(x3, rule, u0, kf):
    """(spikes, u_last) of the contiguous x3; the kernel writes no h (its backward
    recomputes it from x)."""
    n, T, f = x3.shape
    spikes = torch.empty_like(x3)
    u_last = torch.empty((n, f), dtype=x3.dtype)
    u0c, kfc = _small(u0, x3.dtype), _small(kf, x3.dtype)
    fn = getattr(_host_kernel.load(), "snetx_lif_forward_" + _suffix(x3.dtype))
    fn(
        *(_ptr(x3), _ptr(spikes), _ptr(u0c), _ptr(u_last), _ptr(kfc)),
        *(n, T, f, rule.decay, rule.v_th, 0.0 if rule.soft else rule.v_reset),
        int(rule.soft),
        torch.get_num_threads(),
    )
    return spikes, u_last


def _backward_host(x3, gs3, g_ulast, u0, kf, rule):
    """The kernel recomputes h from x (and u0, kf) as its forward did."""
    n, T, f = x3.shape
    dtype = x3.dtype
    gs = gs3.to(dtype).contiguous()
    grad_x = torch.empty_like(x3)
    g_u0 = torch.empty((n, f), dtype=dtype) if u0 is not None else None
    g_k = torch.empty((n, f), dtype=dtype) if kf is not None else None
    gul, u0c, kfc = _small(g_ulast, dtype), _small(u0, dtype), _small(kf, dtype)
    sg_id = _sg.SURROGATE_IDS[_sg.name_of(rule.sg)]
    fn = getattr(_host_kernel.load(), "snetx_lif_backward_" + _suffix(dtype))
    status = fn(
        *(_ptr(x3), _ptr(gs), _ptr(grad_x), _ptr(gul), _ptr(u0c), _ptr(kfc)),
        *(_ptr(g_u0), _ptr(g_k), n, T, f, rule.decay, rule.v_th),
        0.0 if rule.soft else rule.v_reset,
        *(rule.alpha, sg_id, int(rule.detach), int(rule.soft), torch.get_num_threads()),
    )
    if status != 0:  # pragma: no cover - ids come from the registry
        raise RuntimeError(f"CPU LIF kernel rejected surrogate id {sg_id}")
    return grad_x, g_u0, g_k


# ---- dispatch -------------------------------------------------------------------------


def _flat(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def _forward_untraced(x3, rule, u0, kf, store_h=True):
    """(saved, spikes, u_last, whether the host kernel ran). ``saved`` is the one tensor of
    the input's size the backward needs: on the host kernel the (contiguous) input itself,
    whose backward recomputes h from it; on the eager path h (None without store_h)."""
    if _use_host_kernel(x3, rule.sg):
        x3 = x3.contiguous()
        return (x3, *_forward_host(x3, rule, u0, kf), True)
    return (*_forward_eager(x3, rule, u0, kf, _state_dtype(x3.dtype), store_h), False)


class FusedLIF(torch.autograd.Function):
    """``apply(x, u0, kf, rule)`` -> (spikes, u_last); see the module doc. ``x`` is
    ``N x T x ...``, ``u0`` None or ``N x F``, ``kf`` None or a length-``F`` decay."""

    @staticmethod
    def forward(ctx, x, u0, kf, rule):
        ctx.set_materialize_grads(False)  # an unused u_last passes None, not zeros
        x3 = _flat(x)
        if torch.compiler.is_compiling():
            h_all, spikes, u_last = _forward_traced(x3, rule, u0, kf)
            ctx.host = False
            ctx.save_for_backward(h_all, u0, kf)  # the one tensor of the input's size
        else:
            # every untraced path keeps the input x itself, not h: the backward recomputes
            # the charges from it (in cache on the host kernel; with one eager forward
            # otherwise), and a double backward can name what it passes through
            spikes, u_last, ctx.host = _forward_untraced(x3, rule, u0, kf, store_h=False)[1:]
            ctx.save_for_backward(x, u0, kf)
        ctx.rule, ctx.shape = rule, x.shape
        return spikes.view(x.shape), u_last

    @staticmethod
    def backward(ctx, grad_s, grad_ulast):
        saved, u0, kf = ctx.saved_tensors  # h when traced, else the input x
        rule = ctx.rule
        if grad_s is None:
            grad_s = torch.zeros(ctx.shape, dtype=saved.dtype, device=saved.device)
        gs3 = _flat(grad_s)
        with torch.no_grad():
            if torch.compiler.is_compiling():
                gx, g_u0, g_k = _backward_traced(saved, gs3, grad_ulast, u0, kf, rule)
            elif ctx.host:
                x3 = _flat(saved).contiguous()
                gx, g_u0, g_k = _backward_host(x3, gs3, grad_ulast, u0, kf, rule)
            else:
                x3 = _flat(saved)
                h_all = _forward_eager(x3, rule, u0, kf, _state_dtype(x3.dtype))[0]
                gx, g_u0, g_k = _backward_eager(h_all, gs3, grad_ulast, u0, kf, rule)
        grad_kf = None
        if kf is not None and ctx.needs_input_grad[2]:
            grad_kf = g_k.sum(0).to(kf.dtype)  # torch's reduction: the same bits every run
        grad_u0 = g_u0.to(u0.dtype) if u0 is not None and ctx.needs_input_grad[1] else None
        grads = (gx.view(ctx.shape).to(grad_s.dtype), grad_u0, grad_kf)
        links = () if torch.compiler.is_compiling() else (saved, grad_s, grad_ulast, u0, kf)
        return (*no_double_backward(grads, *links), None)


def records_graph(x, *tensors):
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *tensors)
    )
    return grads or torch.compiler.is_compiling()


def forward_no_graph(x, rule, u0=None, kf=None):
    """(spikes, u_last) when no graph is recorded (evaluation, ``torch.no_grad``): nothing
    is saved, so h is not kept (the eager path reuses one step's buffer)."""
    _, spikes, u_last, _ = _forward_untraced(_flat(x), rule, u0, kf, store_h=False)
    return spikes.view(x.shape), u_last
