"""The LIF as torch.library custom ops (``snetx_cuend::lif`` and ``lif_backward``)
with fake implementations and registered autograd, so ``torch.compile(fullgraph=True)``
traces through them without a graph break."""

from typing import Tuple

import numpy as np
import torch

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


@torch.library.custom_op("snetx_cuend::lif", mutates_args=())
def lif(
    x: torch.Tensor, decay: float, v_th: float, v_reset: float, alpha: float, sg: str, detach: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(spikes, h) of the contiguous ``N x T x ...`` CUDA tensor x; alpha, sg and detach
    are used by the registered backward."""
    x = x.contiguous()  # the kernels index N x T x F densely, whatever a compiler passes
    spikes, h = torch.empty_like(x), torch.empty_like(x)
    if x.numel():
        io = DTYPES[x.dtype]
        _launch(x, _compile.forward_name(io), (x, h, spikes), (decay, v_th, v_reset))
    return spikes, h


@lif.register_fake
def _(x, decay, v_th, v_reset, alpha, sg, detach):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("snetx_cuend::lif_spikes", mutates_args=())
def lif_spikes(x: torch.Tensor, decay: float, v_th: float, v_reset: float) -> torch.Tensor:
    """Spikes only, for a forward that records no graph: the kernel writes no h (2 of the
    3 elements of traffic per element)."""
    x = x.contiguous()
    spikes = torch.empty_like(x)
    if x.numel():
        io = DTYPES[x.dtype]
        _launch(x, _compile.forward_name(io), (x, None, spikes), (decay, v_th, v_reset))
    return spikes


@lif_spikes.register_fake
def _(x, decay, v_th, v_reset):
    return torch.empty_like(x)


@torch.library.custom_op("snetx_cuend::lif_backward", mutates_args=())
def lif_backward(
    h: torch.Tensor,
    grad_s: torch.Tensor,
    decay: float,
    v_th: float,
    v_reset: float,
    alpha: float,
    sg: str,
    detach: bool,
) -> torch.Tensor:
    """grad_x of the LIF backward (docs/specification.md) from the saved h and the
    spikes' gradient (same dtype as h)."""
    h = h.contiguous()
    gs = grad_s.to(h.dtype).contiguous()  # referenced until the launch is queued
    gx = torch.empty_like(h)
    if h.numel():
        io = DTYPES[h.dtype]
        _launch(
            h, _compile.backward_name(io, sg, detach), (h, gs, gx), (decay, v_th, v_reset, alpha)
        )
    return gx


@lif_backward.register_fake
def _(h, grad_s, decay, v_th, v_reset, alpha, sg, detach):
    return torch.empty_like(h)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])  # h only; spikes are recomputed from it
    ctx.params = inputs[1:]


def _backward(ctx, grad_s, grad_h):
    (h,) = ctx.saved_tensors
    return (lif_backward(h, grad_s, *ctx.params), None, None, None, None, None, None)


torch.library.register_autograd("snetx_cuend::lif", _backward, setup_context=_setup_context)
