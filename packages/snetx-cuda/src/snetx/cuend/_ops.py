"""The LIF as torch.library custom ops (``snetx_cuend::lif_forward`` / ``lif_backward``)
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


def _launch(kernel, n_threads, args, device):
    import cupy

    props = torch.cuda.get_device_properties(device)
    blocks = max(1, min((n_threads + THREADS - 1) // THREADS, props.multi_processor_count * 32))
    torch_stream = torch.cuda.current_stream(device)
    stream = cupy.cuda.ExternalStream(torch_stream.cuda_stream, device.index)
    kernel((blocks,), (THREADS,), args, stream=stream)


def _scalar(dtype):
    return np.float64 if dtype == torch.float64 else np.float32


def _ptr(t):
    return np.uint64(t.data_ptr())


@torch.library.custom_op("snetx_cuend::lif", mutates_args=())
def lif(
    x: torch.Tensor, decay: float, v_th: float, v_reset: float, alpha: float, sg: str, detach: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(spikes, h) of the contiguous ``N x T x ...`` CUDA tensor x; alpha, sg and detach
    are used by the registered backward."""
    spikes, h = torch.empty_like(x), torch.empty_like(x)
    n, T = x.shape[0], x.shape[1]
    if x.numel() == 0:
        return spikes, h
    f = x.numel() // (n * T)
    io = DTYPES[x.dtype]
    with torch.cuda.device(x.device):
        kernel = _compile.get_kernel(io, _compile.forward_name(io), x.device.index)
        sc = _scalar(x.dtype)
        _launch(
            kernel,
            n * f,
            (
                _ptr(x),
                _ptr(h),
                _ptr(spikes),
                np.int64(n * f),
                np.int64(T),
                np.int64(f),
                sc(decay),
                sc(v_th),
                sc(v_reset),
            ),
            x.device,
        )
    return spikes, h


@lif.register_fake
def _(x, decay, v_th, v_reset, alpha, sg, detach):
    return torch.empty_like(x), torch.empty_like(x)


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
    """grad_x of SPEC §2 from the saved h and the spikes' gradient (same dtype as h)."""
    gs = grad_s.to(h.dtype).contiguous()
    gx = torch.empty_like(h)
    n, T = h.shape[0], h.shape[1]
    if h.numel() == 0:
        return gx
    f = h.numel() // (n * T)
    io = DTYPES[h.dtype]
    with torch.cuda.device(h.device):
        kernel = _compile.get_kernel(io, _compile.backward_name(io, sg, detach), h.device.index)
        sc = _scalar(h.dtype)
        _launch(
            kernel,
            n * f,
            (
                _ptr(h),
                _ptr(gs),
                _ptr(gx),
                np.int64(n * f),
                np.int64(T),
                np.int64(f),
                sc(decay),
                sc(v_th),
                sc(v_reset),
                sc(alpha),
            ),
            h.device,
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
