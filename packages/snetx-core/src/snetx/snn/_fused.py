r"""The fused neurons' kernel dispatch, one for the whole family (:mod:`.family`): one
untraced forward (the host C++ kernel where it applies, else the neuron's plain step in
eager torch ops) and the autograd Function whose backward is one reverse-time pass.

Every path takes the same :class:`Rule` (the neuron's description, constants, reset,
surrogate) and the same tensors: ``st0`` (the state to start from, ``STATES x N x F``;
None is rest) and ``kf`` (every neuron's decays, ``DECAYS x F``: learned ones carry their
graph). Each returns the spikes and the final state ``STATES x N x F``.

The forward builds no autograd graph and saves one tensor of the input's size plus the
small ``st0`` and ``kf``: the input ``x`` itself. The backward recomputes the steps from
it: in cache on the host kernel (8 bytes per float32 element forward, 12 backward,
nothing else written), step by step with the plain step's autograd on the eager path.
``torch.compile`` traces the plain loop instead (see :func:`snetx.snn.functional.run_neuron`).
Evaluation (no graph to record) keeps nothing. The backward is not differentiable: a
double backward raises :data:`DOUBLE_BACKWARD`. It also gives the gradients of ``st0``
and of ``kf`` (each neuron's share summed over the batch by torch, so the result has the
same bits run to run).
"""

import ctypes
from typing import NamedTuple, Tuple

import torch

from . import _buffers, _host_kernel, memory
from . import surrogate as _sg
from .family import MAX_CONSTS, Description

__all__ = ["Rule", "Fused", "forward_no_graph", "records_graph", "no_double_backward"]

#: What a second differentiation through a fused neuron says (gradient penalties,
#: ``autograd.grad(..., create_graph=True)`` then ``.backward()``).
DOUBLE_BACKWARD = (
    "snetx: the fused neuron's backward is not differentiable (double backward, e.g. a "
    "gradient penalty through a neuron); use snetx.snn.functional.lif_loop (or "
    "snetx.snn.family.loop for any neuron), the plain autograd loop of the same "
    "equations, for second-order gradients"
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
    """The validated constants of one call: the neuron, its constants (``v_th``,
    ``v_reset`` -- 0 when soft --, then its own), the reset, surrogate, ``alpha`` and
    ``detach``; ``last`` False when the caller does not read the final state (a backend
    may then return None for it: the host kernel skips writing it, 1/T of its output)."""

    desc: Description
    consts: Tuple[float, ...]
    soft: bool
    sg: type
    alpha: float
    detach: bool
    last: bool = True

    @property
    def padded(self):
        """The constants as the kernels read them: exactly :data:`MAX_CONSTS` numbers."""
        return tuple(self.consts) + (0.0,) * (MAX_CONSTS - len(self.consts))


def state_dtype(dtype):
    """16-bit inputs keep their state in float32, like the CUDA kernels."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


# ---- eager torch ops: the neuron's plain step ------------------------------------------


def _rest(x3, rule, state):
    n, _, f = x3.shape
    return torch.zeros((len(rule.desc.states), n, f), dtype=state, device=x3.device)


class _Heaviside:
    """The surrogate's forward alone, for steps that record no graph (no autograd
    Function call per step)."""

    @staticmethod
    def apply(z, alpha):
        return (z >= 0).to(z.dtype)


def _step(rule, pre, x_t, kf, graph=True):
    d = rule.desc
    k = tuple(kf[i] for i in range(len(d.decays)))
    sg = rule.sg if graph else _Heaviside
    return d.step(d.state(*pre), x_t, k, rule.consts, rule.soft, sg, rule.alpha, rule.detach)


def _forward_eager(x3, rule, st0, kf, keep=False):
    """(spikes, st_last, the state before every step or None) on ``N x T x F``."""
    state = state_dtype(x3.dtype)
    st = (_rest(x3, rule, state) if st0 is None else st0.to(state)).unbind(0)
    k = kf.detach().to(state)
    spikes = torch.empty_like(x3)
    pres = [] if keep else None
    with torch.no_grad():
        for t in range(x3.shape[1]):
            if keep:
                pres.append(st)
            s, st = _step(rule, st, x3[:, t].to(state), k, graph=False)
            spikes[:, t] = s
    return spikes, torch.stack(tuple(st)), pres


# Elements per feature chunk of the eager CPU backward: the recomputed steps' temporaries
# of a chunk stay in cache and are reused by the allocator (a fresh 64 MB tensor costs page
# faults); accelerators take the whole tensor (one launch per op is what matters there).
CPU_CHUNK_ELEMENTS = 1 << 18  # 32x4x32768 LIF fwd+bwd: 60 ms at 1 << 16, 45 ms here


def _chunks(x3):
    n, _, f = x3.shape
    if x3.device.type != "cpu":
        return [slice(0, f)]
    step = max(1, CPU_CHUNK_ELEMENTS // max(n, 1))
    return [slice(f0, min(f0 + step, f)) for f0 in range(0, f, step)]


def _backward_eager(x3, gs3, g_stlast, st0, kf, rule):
    """(grad_x, grad_st0, dL/dkf): per feature chunk (on the CPU; the whole tensor on
    accelerators), the forward again keeping the state before every step, then each
    step's autograd in reverse."""
    state = state_dtype(x3.dtype)
    n, T, f = x3.shape
    grad_x = torch.empty_like(x3, dtype=state)
    g_st0 = torch.empty((len(rule.desc.states), n, f), dtype=state, device=x3.device)
    g_k = torch.zeros(kf.shape, dtype=state, device=x3.device)
    for cols in _chunks(x3):
        x_c = x3[:, :, cols]
        st0_c = None if st0 is None else st0[:, :, cols]
        _, _, pres = _forward_eager(x_c, rule, st0_c, kf[:, cols], keep=True)
        k = kf[:, cols].detach().to(state).requires_grad_()
        g_st = [None] * len(rule.desc.states)
        if g_stlast is not None:
            g_st = list(g_stlast[:, :, cols].to(state).unbind(0))
        for t in range(T - 1, -1, -1):
            pre = [p.detach().requires_grad_() for p in pres[t]]
            x_t = x_c[:, t].detach().to(state).requires_grad_()
            with torch.enable_grad():
                s, st = _step(rule, pre, x_t, k)
                outs = [(s, gs3[:, t, cols].to(state))]
                outs += [(o, g) for o, g in zip(st, g_st) if g is not None]
                got = torch.autograd.grad([o for o, _ in outs], [x_t, *pre, k],
                                          [g for _, g in outs], allow_unused=True)  # fmt: skip
            grad_x[:, t, cols] = got[0]
            g_st = list(got[1:-1])
            if got[-1] is not None:
                g_k[:, cols] += got[-1]
        g_st0[:, :, cols] = torch.stack([
            torch.zeros_like(p) if g is None else g for p, g in zip(pres[0], g_st)
        ]) if T else 0  # fmt: skip
    return grad_x, g_st0, g_k


# ---- the host C++ kernel --------------------------------------------------------------


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _use_host_kernel(x, rule):
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and rule.desc.native is not None
        and _sg.name_of(rule.sg) is not None
        and _host_kernel.available()
    )


def _kernel(rule, what, dtype):
    suffix = "f32" if dtype == torch.float32 else "f64"
    return getattr(_host_kernel.load(), f"snetx_{rule.desc.name}_{what}_{suffix}")


def _consts(rule, dtype):
    real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
    return (real * MAX_CONSTS)(*rule.padded)


def _small(t, dtype):
    """An optional state-sized (or decay) tensor as the contiguous buffer a kernel reads."""
    return None if t is None else t.detach().to(dtype).contiguous()


def _forward_host(x3, rule, st0, kf):
    """(spikes, st_last) of the contiguous x3."""
    n, T, f = x3.shape
    spikes = _buffers.empty(x3.shape, x3.dtype)  # large ones reused: no fresh pages
    st_last = torch.empty((len(rule.desc.states), n, f), dtype=x3.dtype) if rule.last else None
    st0c, kfc = _small(st0, x3.dtype), _small(kf, x3.dtype)
    _kernel(rule, "forward", x3.dtype)(
        *(_ptr(x3), _ptr(spikes), _ptr(st0c), _ptr(st_last), _ptr(kfc)),
        *(_consts(rule, x3.dtype), n, T, f, int(rule.soft), torch.get_num_threads()),
    )
    return spikes, st_last


def _backward_host(x3, gs3, g_stlast, st0, kf, rule, want_k, want_st0):
    """The kernel recomputes the steps from x (and st0, kf) as its forward did; dL/dkf
    is each neuron's share, summed over the batch by torch (the same bits every run);
    dL/dst0 only when ``want_st0`` (else None)."""
    n, T, f = x3.shape
    dtype = x3.dtype
    gs = gs3
    if gs.dtype != dtype or not gs.is_contiguous():  # e.g. sum()'s expanded ones
        gs = _buffers.empty(gs3.shape, dtype)
        gs.copy_(gs3)
    grad_x = _buffers.empty(x3.shape, dtype)
    g_st0 = torch.empty((len(rule.desc.states), n, f), dtype=dtype) if want_st0 else None
    g_k = torch.empty((len(rule.desc.decays), n, f), dtype=dtype) if want_k else None
    gsl, st0c, kfc = _small(g_stlast, dtype), _small(st0, dtype), _small(kf, dtype)
    sg_id = _sg.SURROGATE_IDS[_sg.name_of(rule.sg)]
    status = _kernel(rule, "backward", dtype)(
        *(_ptr(x3), _ptr(gs), _ptr(grad_x), _ptr(gsl), _ptr(st0c), _ptr(kfc)),
        *(_ptr(g_st0), _ptr(g_k), _consts(rule, dtype), n, T, f, rule.alpha),
        *(sg_id, int(rule.detach), int(rule.soft), torch.get_num_threads()),
    )
    if status != 0:  # pragma: no cover - ids come from the registry
        raise RuntimeError(f"CPU neuron kernel rejected surrogate id {sg_id}")
    return grad_x, g_st0, (g_k.sum(1) if want_k else None)


# ---- dispatch -------------------------------------------------------------------------


def _flat(x):
    return x.reshape(x.shape[0], x.shape[1], -1)


def _forward_untraced(x3, rule, st0, kf):
    """(spikes, st_last, whether the host kernel ran)."""
    if _use_host_kernel(x3, rule):
        return (*_forward_host(x3.contiguous(), rule, st0, kf), True)
    return (*_forward_eager(x3, rule, st0, kf)[:2], False)


class Fused(torch.autograd.Function):
    """``apply(x, st0, kf, rule)`` -> (spikes, st_last); see the module doc. ``x`` is
    ``N x T x ...``, ``st0`` None or ``STATES x N x F``, ``kf`` ``DECAYS x F``."""

    @staticmethod
    def forward(ctx, x, st0, kf, rule):
        ctx.set_materialize_grads(False)  # an unused st_last passes None, not zeros
        spikes, st_last, ctx.host = _forward_untraced(_flat(x), rule, st0, kf)
        # the input itself, not h: the backward recomputes the steps from it (in cache on
        # the host kernel), and a double backward can name what it passes through; or,
        # for a compact BatchNorm's output, what that BatchNorm keeps anyway
        memory.save_input(ctx, x, st0, kf)
        ctx.rule, ctx.shape = rule, x.shape
        return spikes.view(x.shape), st_last

    @staticmethod
    def backward(ctx, grad_s, grad_stlast):
        x, st0, kf = memory.saved_input(ctx)
        rule = ctx.rule
        if grad_s is None:
            grad_s = torch.zeros(ctx.shape, dtype=x.dtype, device=x.device)
        x3, gs3 = _flat(x), _flat(grad_s)
        with torch.no_grad():
            if ctx.host:
                want_k, want_st0 = ctx.needs_input_grad[2], ctx.needs_input_grad[1]
                gx, g_st0, g_k = _backward_host(
                    x3.contiguous(), gs3, grad_stlast, st0, kf, rule, want_k, want_st0
                )
            else:
                gx, g_st0, g_k = _backward_eager(x3, gs3, grad_stlast, st0, kf, rule)
        grad_kf = None
        if ctx.needs_input_grad[2] and g_k is not None:
            grad_kf = g_k.to(kf.dtype)
        grad_st0 = g_st0.to(st0.dtype) if st0 is not None and ctx.needs_input_grad[1] else None
        grads = (gx.view(ctx.shape).to(grad_s.dtype), grad_st0, grad_kf)
        return (*no_double_backward(grads, x, grad_s, grad_stlast, st0, kf), None)


def records_graph(x, *tensors):
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, *tensors)
    )


def forward_no_graph(x, rule, st0, kf):
    """(spikes, st_last) when no graph is recorded (evaluation, ``torch.no_grad``)."""
    spikes, st_last, _ = _forward_untraced(_flat(x), rule, st0, kf)
    return spikes.view(x.shape), st_last
