r"""The fused LIF's kernel dispatch: one untraced forward (the host C++ kernel where it
applies, else eager torch ops), the traced form for ``torch.compile``, and the autograd
Function whose backward is one reverse-time loop.

The forward builds no autograd graph and saves one tensor, the charged potential ``h``
(float32 or float64); evaluation (no graph to record) does not keep ``h`` at all.
"""

import ctypes

import torch

from . import _host_kernel
from . import surrogate as _sg

__all__ = ["FusedLIF", "spikes_only", "records_graph"]


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


def _forward_eager(x3, decay, v_th, v_reset, state, store_h=True):
    """(h or None, spikes); without store_h, h lives in one step-sized scratch buffer."""
    n, T, f = x3.shape
    h_all = torch.empty((n, T, f), dtype=state, device=x3.device) if store_h else None
    spikes = torch.empty((n, T, f), dtype=x3.dtype, device=x3.device)
    for cols in _chunks(x3):
        u = None
        if not store_h:
            scratch = torch.empty((n, cols.stop - cols.start), dtype=state, device=x3.device)
        for t in range(T):
            h = h_all[:, t, cols] if store_h else scratch
            s = spikes[:, t, cols]
            if u is None:
                h.copy_(x3[:, t, cols])
            else:
                torch.add(x3[:, t, cols], u, alpha=decay, out=h)
            torch.ge(h, v_th, out=s)  # float spikes: cheaper than a bool mask on CPU
            # u = h (1 - s) + v_reset s
            u = torch.addcmul(h, h, s, value=-1)  # exactly h or 0
            if v_reset != 0.0:
                u.add_(s, alpha=v_reset)  # exactly v_reset where fired
    return h_all, spikes


def _backward_eager(h_all, grad_s3, decay, v_th, v_reset, sg, alpha, detach):
    n, T, f = h_all.shape
    grad_x = torch.empty_like(h_all)
    for cols in _chunks(h_all):
        g_next = None
        for t in range(T - 1, -1, -1):
            h = h_all[:, t, cols]
            z = h - v_th
            sg_d = sg.derivative(z, alpha)
            g = grad_x[:, t, cols]
            torch.mul(grad_s3[:, t, cols], sg_d, out=g)
            if g_next is not None:
                # g_h[t] += decay * g_h[t+1] * du/dh[t],  du/dh = (1 - s) [+ (v_reset - h) sg']
                du = torch.lt(z, 0).to(h.dtype)
                if not detach:
                    du.addcmul_(torch.rsub(h, v_reset), sg_d)
                g.addcmul_(g_next, du, value=decay)
            g_next = g
    return grad_x


def _forward_traced(x, decay, v_th, v_reset, state):
    # Dynamo cannot trace out= into views; Inductor fuses this out-of-place form anyway.
    u = torch.zeros_like(x[:, 0], dtype=state)
    hs = []
    for x_t in x.unbind(1):
        h = x_t + u * decay
        u = h.masked_fill(h >= v_th, v_reset)
        hs.append(h)
    h_all = torch.stack(hs, 1)
    return h_all, (h_all >= v_th).to(x.dtype)


def _backward_traced(h_all, grad_s, decay, v_th, v_reset, sg, alpha, detach):
    z = h_all - v_th
    sg_d = sg.derivative(z, alpha)
    keep = (z < 0).to(h_all.dtype)
    du_dh = keep if detach else keep + (v_reset - h_all) * sg_d
    grad_h = grad_s.to(h_all.dtype) * sg_d
    g = grad_h[:, -1]
    gs = [g]
    for t in range(h_all.shape[1] - 2, -1, -1):
        g = grad_h[:, t] + g * du_dh[:, t] * decay
        gs.append(g)
    return torch.stack(gs[::-1], 1)


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def _use_host_kernel(x, sg):
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and _sg.name_of(sg) is not None
        and _host_kernel.available()
    )


def _forward_host(x, decay, v_th, v_reset, store_h=True):
    """(h or None, spikes); without store_h the kernel writes the spikes only."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1).contiguous()
    h_all = torch.empty_like(x3) if store_h else None
    spikes = torch.empty_like(x3)
    n, T, f = x3.shape
    fn = getattr(
        _host_kernel.load(), "snetx_lif_forward_" + ("f32" if x.dtype == torch.float32 else "f64")
    )
    h_ptr = _ptr(h_all) if store_h else None
    fn(_ptr(x3), h_ptr, _ptr(spikes), n, T, f, decay, v_th, v_reset, torch.get_num_threads())
    return (h_all.view(x.shape) if store_h else None), spikes.view(x.shape)


def _forward_untraced(x, decay, v_th, v_reset, sg, store_h=True):
    """(h or None, spikes, whether the host kernel ran): the host C++ kernel where it
    applies, else the eager fused ops."""
    if _use_host_kernel(x, sg):
        return (*_forward_host(x, decay, v_th, v_reset, store_h), True)
    x3 = x.reshape(x.shape[0], x.shape[1], -1)
    h_all, spikes = _forward_eager(x3, decay, v_th, v_reset, _state_dtype(x.dtype), store_h)
    return (h_all.view(x.shape) if store_h else None), spikes.view(x.shape), False


def _backward_host(h_all, grad_s, decay, v_th, v_reset, sg, alpha, detach):
    gs = grad_s.to(h_all.dtype).contiguous()
    grad_x = torch.empty_like(h_all)
    n, T = h_all.shape[:2]
    f = h_all.numel() // max(n * T, 1)
    suffix = "f32" if h_all.dtype == torch.float32 else "f64"
    fn = getattr(_host_kernel.load(), "snetx_lif_backward_" + suffix)
    sg_id = _sg.SURROGATE_IDS[_sg.name_of(sg)]
    status = fn(
        _ptr(h_all),
        _ptr(gs),
        _ptr(grad_x),
        n,
        T,
        f,
        decay,
        v_th,
        v_reset,
        alpha,
        sg_id,
        int(detach),
        torch.get_num_threads(),
    )
    if status != 0:  # pragma: no cover - ids come from the registry
        raise RuntimeError(f"CPU LIF kernel rejected surrogate id {sg_id}")
    return grad_x


class FusedLIF(torch.autograd.Function):
    """``apply(x, tau, v_th, v_reset, sg, alpha, detach)`` -> spikes; see the module doc."""

    @staticmethod
    def forward(ctx, x, tau, v_th, v_reset, sg, alpha, detach):
        decay = 1.0 / tau
        if torch.compiler.is_compiling():
            h_all, spikes = _forward_traced(x, decay, v_th, v_reset, _state_dtype(x.dtype))
            ctx.host = False
        else:
            h_all, spikes, ctx.host = _forward_untraced(x, decay, v_th, v_reset, sg)
        ctx.save_for_backward(h_all)  # the only tensor kept for backward
        ctx.params = (decay, v_th, v_reset, sg, alpha, detach)
        return spikes

    @staticmethod
    def backward(ctx, grad_s):
        (h_all,) = ctx.saved_tensors
        if torch.compiler.is_compiling():
            grad_x = _backward_traced(h_all, grad_s, *ctx.params)
        elif ctx.host:
            grad_x = _backward_host(h_all, grad_s, *ctx.params)
        else:
            shape = h_all.shape
            grad_x = _backward_eager(
                h_all.view(shape[0], shape[1], -1),
                grad_s.reshape(shape[0], shape[1], -1),
                *ctx.params,
            ).view(shape)
        return grad_x.to(grad_s.dtype), None, None, None, None, None, None


def records_graph(x):
    return (torch.is_grad_enabled() and x.requires_grad) or torch.compiler.is_compiling()


def spikes_only(x, tau, v_th, v_reset, sg):
    """Forward when no graph is recorded (evaluation, ``torch.no_grad``): nothing is saved,
    so h is not kept (the host kernel does not write it; the eager path reuses one
    step's buffer)."""
    return _forward_untraced(x, 1.0 / tau, v_th, v_reset, sg, store_h=False)[1]
