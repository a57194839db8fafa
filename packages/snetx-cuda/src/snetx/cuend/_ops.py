"""The LIF as torch.library custom ops (``snetx_cuend::lif`` and ``lif_backward``)
with fake implementations and registered autograd, so ``torch.compile(fullgraph=True)``
traces through them without a graph break."""

import math
from typing import Optional, Tuple

import numpy as np
import torch
from snetx.snn._fused import no_double_backward

from . import _compile

THREADS = 256
DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


def _launch(t, kernel_name, pointers, scalars):
    """Run ``kernel_name`` over the neurons of the ``N x T x ...`` tensor ``t`` on
    PyTorch's current stream of t's device, with explicitly typed scalars."""
    import cupy

    n, T = t.shape[0], t.shape[1]
    f = t.numel() // (n * T)
    sc = np.float64 if t.dtype == torch.float64 else np.float32
    args = (
        *(np.uint64(0 if p is None else p.data_ptr()) for p in pointers),
        np.int64(n * f),
        np.int64(T),
        np.int64(f),
        *(sc(v) for v in scalars),
    )
    with torch.cuda.device(t.device):
        kernel = _compile.get_kernel(DTYPES[t.dtype], kernel_name, t.device.index)
        props = torch.cuda.get_device_properties(t.device)
        blocks = max(1, min((n * f + THREADS - 1) // THREADS, props.multi_processor_count * 32))
        with _cupy_stream(cupy, torch.cuda.current_stream(t.device)):
            kernel((blocks,), (THREADS,), args)  # launched on CuPy's current stream


def _cupy_stream(cupy, torch_stream):
    """PyTorch's stream as a CuPy stream: the CUDA stream protocol where CuPy has it
    (CuPy >= 14), else ExternalStream (deprecated there)."""
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None and hasattr(torch_stream, "__cuda_stream__"):
        return from_external(torch_stream)
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, torch_stream.device.index)


def _state(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _features(x):
    return math.prod(x.shape[2:])


def _small(t, x):
    """An optional state-sized tensor as the contiguous state-dtype buffer a kernel reads."""
    return None if t is None else t.to(_state(x)).contiguous()


def _checkpoints_shape(x):
    """N x ceil(T / CHUNK) x F: the membrane before each chunk of steps."""
    return (x.shape[0], -(-x.shape[1] // _compile.CHUNK), _features(x))


def _forward(x, ckpt, u0, kf, decay, v_th, v_reset, soft):
    """(spikes, u_last) of the forward kernel; it writes the checkpoints too unless ckpt
    is None."""
    spikes = torch.empty_like(x)
    u_last = torch.empty((x.shape[0], _features(x)), dtype=_state(x), device=x.device)
    if x.numel():
        name = _compile.forward_name(DTYPES[x.dtype], soft)
        pointers = (x, ckpt, spikes, _small(u0, x), u_last, _small(kf, x))
        _launch(x, name, pointers, (decay, v_th, v_reset))
    return spikes, u_last


@torch.library.custom_op("snetx_cuend::lif", mutates_args=())
def lif(
    x: torch.Tensor,
    u0: Optional[torch.Tensor],
    kf: Optional[torch.Tensor],
    decay: float,
    v_th: float,
    v_reset: float,
    soft: bool,
    alpha: float,
    sg: str,
    detach: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes, checkpoints, u_last) of the contiguous ``N x T x ...`` CUDA tensor x,
    starting from ``u0`` (``N x F`` state, or None: rest), with the per-feature decay
    ``kf`` (length ``F``, or None: ``decay``) and the soft reset when ``soft``; alpha, sg
    and detach are used by the registered backward, which recomputes the charges from x
    and the checkpoints (the membrane before every ``CHUNK`` steps, ``N x ceil(T/CHUNK) x
    F``)."""
    x = x.contiguous()  # the kernels index N x T x F densely, whatever a compiler passes
    ckpt = torch.empty(_checkpoints_shape(x), dtype=_state(x), device=x.device)
    spikes, u_last = _forward(x, ckpt, u0, kf, decay, v_th, v_reset, soft)
    return spikes, ckpt, u_last


@lif.register_fake
def _(x, u0, kf, decay, v_th, v_reset, soft, alpha, sg, detach):
    u_last = x.new_empty((x.shape[0], _features(x)), dtype=_state(x))
    return torch.empty_like(x), x.new_empty(_checkpoints_shape(x), dtype=_state(x)), u_last


@torch.library.custom_op("snetx_cuend::lif_spikes", mutates_args=())
def lif_spikes(
    x: torch.Tensor,
    u0: Optional[torch.Tensor],
    kf: Optional[torch.Tensor],
    decay: float,
    v_th: float,
    v_reset: float,
    soft: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(spikes, u_last) for a forward that records no graph: no checkpoints either."""
    return _forward(x.contiguous(), None, u0, kf, decay, v_th, v_reset, soft)


@lif_spikes.register_fake
def _(x, u0, kf, decay, v_th, v_reset, soft):
    return torch.empty_like(x), x.new_empty((x.shape[0], _features(x)), dtype=_state(x))


@torch.library.custom_op("snetx_cuend::lif_backward", mutates_args=())
def lif_backward(
    x: torch.Tensor,
    ckpt: torch.Tensor,
    grad_s: torch.Tensor,
    grad_ulast: Optional[torch.Tensor],
    u0: Optional[torch.Tensor],
    kf: Optional[torch.Tensor],
    decay: float,
    v_th: float,
    v_reset: float,
    soft: bool,
    alpha: float,
    sg: str,
    detach: bool,
    want_u0: bool,
    want_k: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_u0, grad_kf) of the LIF backward (docs/specification.md) from the
    input x and the forward's checkpoints (the charges are recomputed from them), the
    spikes' gradient and the gradient reaching the final state. grad_u0 is ``N x F`` when
    ``want_u0`` (else empty); grad_kf sums each neuron's dL/dk over the batch with torch
    (the same bits every run) when ``want_k`` (else empty)."""
    x = x.contiguous()
    gs = grad_s.to(x.dtype).contiguous()  # referenced until the launch is queued
    gx = torch.empty_like(x)
    nf = (x.shape[0], _features(x))
    g_u0 = torch.empty(nf, dtype=_state(x), device=x.device) if want_u0 else None
    g_k = torch.empty(nf, dtype=_state(x), device=x.device) if want_k else None
    if x.numel():
        io = DTYPES[x.dtype]
        small = (_small(grad_ulast, x), _small(u0, x), _small(kf, x))
        pointers = (x, ckpt.contiguous(), gs, gx, *small, g_u0, g_k)
        _launch(
            x,
            _compile.backward_name(io, sg, detach, soft),
            pointers,
            (decay, v_th, v_reset, alpha),
        )
    empty = x.new_empty((0,), dtype=_state(x))
    grad_kf = g_k.sum(0) if want_k else empty
    return gx, (g_u0 if want_u0 else empty), grad_kf


@lif_backward.register_fake
def _(
    x, ckpt, grad_s, grad_ulast, u0, kf, decay, v_th, v_reset, soft, alpha, sg, detach, want_u0,
    want_k,
):  # fmt: skip
    nf = (x.shape[0], _features(x))
    g_u0 = x.new_empty(nf if want_u0 else (0,), dtype=_state(x))
    g_k = x.new_empty((nf[1],) if want_k else (0,), dtype=_state(x))
    return torch.empty_like(x), g_u0, g_k


def _setup_context(ctx, inputs, output):
    x, u0, kf = inputs[:3]
    # x (kept alive by autograd anyway) and the checkpoints (1/CHUNK of its elements):
    # the backward recomputes the charges instead of reading a saved h
    ctx.save_for_backward(x, output[1], u0, kf)
    ctx.params = inputs[3:]
    ctx.dtypes = (None if u0 is None else u0.dtype, None if kf is None else kf.dtype)


def _backward(ctx, grad_s, grad_ckpt, grad_ulast):
    x, ckpt, u0, kf = ctx.saved_tensors
    want_u0 = u0 is not None and ctx.needs_input_grad[1]
    want_k = kf is not None and ctx.needs_input_grad[2]
    if grad_s is None:
        grad_s = torch.zeros_like(x)
    gx, g_u0, g_kf = lif_backward(x, ckpt, grad_s, grad_ulast, u0, kf, *ctx.params, want_u0, want_k)
    grads = (
        gx,
        g_u0.to(ctx.dtypes[0]) if want_u0 else None,
        g_kf.to(ctx.dtypes[1]) if want_k else None,
    )
    # a second differentiation raises instead of missing the neuron's terms silently
    return (*no_double_backward(grads), *([None] * len(ctx.params)))


torch.library.register_autograd("snetx_cuend::lif", _backward, setup_context=_setup_context)
