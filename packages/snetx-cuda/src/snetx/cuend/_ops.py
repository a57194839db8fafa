"""The neuron family as torch.library custom ops (``snetx_cuend::neuron``,
``neuron_spikes`` and ``neuron_backward``), one set for every neuron (its name is an
argument), with fake implementations and registered autograd, so
``torch.compile(fullgraph=True)`` traces through them without a graph break.

Tensors as every backend takes them (snetx.snn.functional.prepare_call): ``st0`` None or
``STATES x N x F``, ``kf`` ``DECAYS x F``; ``consts`` the neuron's constants (v_th,
v_reset, then its own; four numbers)."""

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
from snetx.snn import memory
from snetx.snn._fused import no_double_backward
from snetx.snn.family import NEURONS

from . import _compile

THREADS = 256
DTYPES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


def _launch(t, neuron, kernel_name, pointers, scalars):
    """Run ``kernel_name`` of ``neuron`` over the neurons of the ``N x T x ...`` tensor
    ``t`` on PyTorch's current stream of t's device, with explicitly typed scalars."""
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
        kernel = _compile.get_kernel(DTYPES[t.dtype], kernel_name, t.device.index, neuron)
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


def _states(neuron):
    return len(NEURONS[neuron].states)


def _small(t, x):
    """An optional state-sized tensor as the contiguous state-dtype buffer a kernel reads."""
    return None if t is None else t.to(_state(x)).contiguous()


def _checkpoints_shape(x, neuron):
    """N x ceil(T / CHUNK) x STATES x F: the state before each chunk of steps."""
    return (x.shape[0], -(-x.shape[1] // _compile.CHUNK), _states(neuron), _features(x))


def _last_shape(x, neuron):
    return (_states(neuron), x.shape[0], _features(x))


def _forward(neuron, x, ckpt, st0, kf, consts, soft):
    """(spikes, st_last) of the forward kernel; it writes the checkpoints too unless ckpt
    is None."""
    spikes = torch.empty_like(x)
    st_last = torch.empty(_last_shape(x, neuron), dtype=_state(x), device=x.device)
    if x.numel():
        name = _compile.forward_name(DTYPES[x.dtype], soft, neuron)
        pointers = (x, ckpt, spikes, _small(st0, x), st_last, _small(kf, x))
        _launch(x, neuron, name, pointers, consts)
    return spikes, st_last


@torch.library.custom_op("snetx_cuend::neuron", mutates_args=())
def neuron(
    name: str,
    x: torch.Tensor,
    st0: Optional[torch.Tensor],
    kf: torch.Tensor,
    consts: List[float],
    soft: bool,
    alpha: float,
    sg: str,
    detach: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(spikes, checkpoints, st_last) of the neuron ``name`` on the contiguous ``N x T x
    ...`` CUDA tensor x, starting from ``st0`` (None: rest), with the decays ``kf`` and
    constants ``consts``; alpha, sg and detach are used by the registered backward, which
    recomputes the steps from x and the checkpoints (the state before every ``CHUNK``
    steps)."""
    x = x.contiguous()  # the kernels index N x T x F densely, whatever a compiler passes
    ckpt = torch.empty(_checkpoints_shape(x, name), dtype=_state(x), device=x.device)
    spikes, st_last = _forward(name, x, ckpt, st0, kf, consts, soft)
    return spikes, ckpt, st_last


@neuron.register_fake
def _(name, x, st0, kf, consts, soft, alpha, sg, detach):
    ckpt = x.new_empty(_checkpoints_shape(x, name), dtype=_state(x))
    return torch.empty_like(x), ckpt, x.new_empty(_last_shape(x, name), dtype=_state(x))


@torch.library.custom_op("snetx_cuend::neuron_spikes", mutates_args=())
def neuron_spikes(
    name: str,
    x: torch.Tensor,
    st0: Optional[torch.Tensor],
    kf: torch.Tensor,
    consts: List[float],
    soft: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(spikes, st_last) for a forward that records no graph: no checkpoints either."""
    return _forward(name, x.contiguous(), None, st0, kf, consts, soft)


@neuron_spikes.register_fake
def _(name, x, st0, kf, consts, soft):
    return torch.empty_like(x), x.new_empty(_last_shape(x, name), dtype=_state(x))


@torch.library.custom_op("snetx_cuend::neuron_backward", mutates_args=())
def neuron_backward(
    name: str,
    x: torch.Tensor,
    ckpt: torch.Tensor,
    grad_s: torch.Tensor,
    grad_stlast: Optional[torch.Tensor],
    st0: Optional[torch.Tensor],
    kf: torch.Tensor,
    consts: List[float],
    soft: bool,
    alpha: float,
    sg: str,
    detach: bool,
    want_st0: bool,
    want_k: bool,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_st0, grad_kf) of the neuron's backward from the input x and the
    forward's checkpoints (the steps are recomputed from them), the spikes' gradient and
    the gradient reaching the final state. grad_st0 is ``STATES x N x F`` when
    ``want_st0`` (else empty); grad_kf sums each neuron's dL/dk over the batch with torch
    (the same bits every run) when ``want_k`` (else empty)."""
    x = x.contiguous()
    gs = grad_s.to(x.dtype).contiguous()  # referenced until the launch is queued
    gx = torch.empty_like(x)
    shape, per_k = _last_shape(x, name), (kf.shape[0], x.shape[0], _features(x))
    g_st0 = torch.empty(shape, dtype=_state(x), device=x.device) if want_st0 else None
    g_k = torch.empty(per_k, dtype=_state(x), device=x.device) if want_k else None
    if x.numel():
        io = DTYPES[x.dtype]
        small = (_small(grad_stlast, x), _small(st0, x), _small(kf, x))
        pointers = (x, ckpt.contiguous(), gs, gx, *small, g_st0, g_k)
        kernel = _compile.backward_name(io, sg, detach, soft, name)
        _launch(x, name, kernel, pointers, (*consts, alpha))
    empty = x.new_empty((0,), dtype=_state(x))
    grad_kf = g_k.sum(1) if want_k else empty
    return gx, (g_st0 if want_st0 else empty), grad_kf


@neuron_backward.register_fake
def _(
    name, x, ckpt, grad_s, grad_stlast, st0, kf, consts, soft, alpha, sg, detach, want_st0,
    want_k,
):  # fmt: skip
    g_st0 = x.new_empty(_last_shape(x, name) if want_st0 else (0,), dtype=_state(x))
    g_k = x.new_empty((kf.shape[0], _features(x)) if want_k else (0,), dtype=_state(x))
    return torch.empty_like(x), g_st0, g_k


def _setup_context(ctx, inputs, output):
    name, x, st0, kf = inputs[:4]
    # x (kept alive by autograd anyway) and the checkpoints (STATES/CHUNK of its
    # elements): the backward recomputes the steps instead of reading saved ones; or,
    # for a compact BatchNorm's output, what that BatchNorm keeps anyway
    memory.save_input(ctx, x, output[1], st0, kf)
    ctx.name, ctx.params = name, inputs[4:]
    ctx.dtypes = (None if st0 is None else st0.dtype, kf.dtype)


def _backward(ctx, grad_s, grad_ckpt, grad_stlast):
    x, ckpt, st0, kf = memory.saved_input(ctx)
    want_st0 = st0 is not None and ctx.needs_input_grad[2]
    want_k = ctx.needs_input_grad[3]
    if grad_s is None:
        grad_s = torch.zeros_like(x)
    gx, g_st0, g_kf = neuron_backward(
        ctx.name, x, ckpt, grad_s, grad_stlast, st0, kf, *ctx.params, want_st0, want_k
    )
    grads = (
        gx,
        g_st0.to(ctx.dtypes[0]) if want_st0 else None,
        g_kf.to(ctx.dtypes[1]) if want_k else None,
    )
    # a second differentiation raises instead of missing the neuron's terms silently
    return (None, *no_double_backward(grads), *([None] * len(ctx.params)))


torch.library.register_autograd("snetx_cuend::neuron", _backward, setup_context=_setup_context)
