r"""Activation memory for training: what autograd keeps for backward, kept small.

A spiking conv layer ``Tosnn(conv -> BatchNorm) -> neuron`` would keep, per element, the
conv's input (spikes, 0 or 1, stored as float), the BatchNorm's input and the neuron's
input. snetx keeps less, by default and exactly:

- **Packed inputs.** A convolution or linear layer whose input is known (by a
  :func:`mark`: neurons mark their spikes; pools, ``Flatten`` and the SEW connections
  pass marks on) to hold only small multiples of a power of two (spikes; the sum of a
  residual block's spikes; a 2x2 average of spikes) keeps it as codes: one bit per
  element for 0/1, one byte otherwise. The backward restores the very same floats, so
  gradients are bit for bit those of the plain layer. So does a spiking attention's
  matrix product (:func:`spike_matmul`). Average pools keep nothing, max pools int16
  indices (autograd would keep their float input and int64 indices).
- **One tensor for BatchNorm and the neuron.** A BatchNorm (training mode) at the end of
  a :class:`~snetx.snn.algorithm.Tosnn` keeps its input ``y`` (as ``nn.BatchNorm2d``
  does) and the neuron that reads its output recomputes that output from ``y`` in its
  backward (the same operation on the same tensors, so the same bits) instead of
  keeping a second tensor.

Both happen inside :class:`~snetx.snn.algorithm.Tosnn` (which every model of the zoo and
``snetx-train`` uses), in eager mode with gradients on; a module with hooks, a subclass,
``torch.compile`` (which plans its own saving), autocast and evaluation run the plain
modules.
:func:`compact` switches it off (``SNETX_COMPACT=0`` in the environment, for a whole
process), e.g. for a double backward, which the compact layers refuse.

For still less, :class:`Checkpoint` keeps only a module's (packed) input and recomputes
the rest in backward, ``Checkpoint(..., chunk=K)`` runs a sequence ``K`` time steps at a
time, handing the neurons' state over between chunks, and :func:`checkpoint_layers` does
it for every layer and block of a model.

:func:`packed_spikes` (a context) applies the packing to every tensor saved within it.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx.snn import memory, neuron
    >>> from snetx.snn.algorithm import Tosnn
    >>> net = nn.Sequential(
    ...     Tosnn(nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8))),
    ...     neuron.LIF(),
    ...     Tosnn(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))),
    ...     neuron.LIF(),
    ... )
    >>> x = torch.rand(2, 4, 2, 16, 16)
    >>> net(x).sum().backward()                  # compact by default
    >>> with memory.compact(False):               # the plain modules, same gradients
    ...     net(x).sum().backward()
"""

import contextlib
import os

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

__all__ = [
    "compact",
    "enabled",
    "per_frame",
    "recipe",
    "save_input",
    "saved_input",
    "active",
    "mark",
    "codes",
    "mark_sum",
    "mark_product",
    "spike_and",
    "spike_matmul",
    "checkpoint",
    "Checkpoint",
    "checkpoint_layers",
    "checkpointed",
    "packed_spikes",
    "pack",
    "unpack",
    "PackedSpikes",
    "saved_storages",
]

_ENABLED = [os.environ.get("SNETX_COMPACT", "1") != "0"]
# a checkpoint's forward (no graph) computes BatchNorm as its recompute will, so that the
# recomputed activations are the very ones the forward passed on
_IN_CHECKPOINT = [False]

#: scales tried when packing: 1 (spikes and sums of spikes), 4 (2x2 averages of them);
#: powers of two, so ``code / scale`` restores the float exactly
_SCALES = (1.0, 4.0)


def enabled():
    """Whether compact saving is on (see the module doc)."""
    return _ENABLED[0]


@contextlib.contextmanager
def compact(enabled=True):
    """Within this context compact saving is on (``True``) or off (``False``)."""
    before, _ENABLED[0] = _ENABLED[0], bool(enabled)
    try:
        yield
    finally:
        _ENABLED[0] = before


# ---- packing: exact codes ----------------------------------------------------------------


class PackedSpikes:
    """A tensor kept as codes: ``bits`` (uint8; 8 elements a byte when ``scale`` is 0, else
    one code a byte, the value being ``code / scale``), and what restores it."""

    __slots__ = ("bits", "shape", "dtype", "numel", "scale")

    def __init__(self, bits, shape, dtype, numel, scale=0.0):
        self.bits, self.shape, self.dtype, self.numel = bits, shape, dtype, numel
        self.scale = scale


def _to_bits(u):
    if u.device.type == "cpu":
        return torch.from_numpy(np.packbits(u.numpy()))
    pad = (-u.numel()) % 8
    if pad:
        u = torch.cat([u, u.new_zeros(pad)])
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=u.device)
    return (u.view(-1, 8) << shifts).sum(1, dtype=torch.uint8)


def _from_bits(bits, numel):
    if bits.device.type == "cpu":
        return torch.from_numpy(np.unpackbits(bits.numpy(), count=numel))
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=bits.device)
    return ((bits.unsqueeze(1) >> shifts) & 1).reshape(-1)[:numel]


def encode(t):
    """``t`` as :class:`PackedSpikes` when every element is ``k / scale`` for an integer
    ``0 <= k <= 255`` and a scale of :data:`_SCALES` (bits when ``k`` is 0 or 1), else
    None. Floating tensors of at least 64 elements on CPU or CUDA only."""
    if not (t.is_floating_point() and t.numel() >= 64 and t.device.type in ("cpu", "cuda")):
        return None
    flat = t.detach().reshape(-1)
    for scale in _SCALES:
        q = flat if scale == 1.0 else flat * scale
        u = q.to(torch.uint8)
        # exact iff every q is an integer in 0..255 (anything else converts to a different
        # value, NaN included)
        if torch.equal(u.to(q.dtype), q):
            break
    else:
        return None
    if scale == 1.0 and int(u.max()) <= 1:
        return PackedSpikes(_to_bits(u), t.shape, t.dtype, t.numel())
    return PackedSpikes(u, t.shape, t.dtype, t.numel(), scale)


def encode_known(t, scale, top):
    """:func:`encode` for a tensor known (by its :func:`codes` mark) to hold ``k / scale``
    with integers ``0 <= k <= top``: no check, one conversion."""
    flat = t.detach().reshape(-1)
    u = (flat if scale == 1.0 else flat * scale).to(torch.uint8)
    if scale == 1.0 and top <= 1:
        return PackedSpikes(_to_bits(u), t.shape, t.dtype, t.numel())
    return PackedSpikes(u, t.shape, t.dtype, t.numel(), scale)


# ---- marks: what a tensor is known to hold ------------------------------------------------

_CODES = "_snetx_codes"


def mark(t, scale=1.0, top=1):
    """Mark ``t`` as holding only ``k / scale`` for integers ``0 <= k <= top`` (spikes:
    the defaults). Producers call it (neurons, pools, residual connections); a layer that
    reads a marked tensor keeps it packed. Returns ``t``."""
    # (inference tensors have no version counter, and no backward to keep anything for)
    tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
    if top <= 255 and not (tracing or t.is_inference()):
        setattr(t, _CODES, (t._version, float(scale), int(top)))
        base = t._base
        if base is not None and base.numel() == t.numel() and base.dtype == t.dtype:
            # t is all of its base (e.g. an autograd output's view): other views of that
            # base (transposes, reshapes) hold the same values
            setattr(base, _CODES, (t._version, float(scale), int(top)))
    return t


def codes(t):
    """``(scale, top)`` of a :func:`mark` still valid (``t`` not modified since), or
    None."""
    if torch.compiler.is_compiling():
        return None
    c = getattr(t, _CODES, None)
    if c is None and t._base is not None and t._base.dtype == t.dtype:
        c = getattr(t._base, _CODES, None)  # a view (reshape, transpose, slice) of spikes
    return None if c is None or c[0] != t._version else c[1:]


def mark_sum(out, a, b):
    """Mark ``out = a + b`` when ``a`` and ``b`` are marked integers (scale 1)."""
    ca, cb = codes(a), codes(b)
    if ca and cb and ca[0] == cb[0] == 1.0 and ca[1] + cb[1] <= 255:
        mark(out, 1.0, ca[1] + cb[1])
    return out


def mark_product(out, a, b):
    """Mark ``out = a * b`` (or ``a * (1 - b)``) for marked ``a`` and spikes ``b``."""
    ca, cb = codes(a), codes(b)
    if ca and cb and cb == (1.0, 1):
        mark(out, *ca)
    return out


class _SpikeAnd(torch.autograd.Function):
    """``a * s`` or ``a * (1 - s)`` of marked ``a`` and spikes ``s``, keeping both packed
    (autograd would keep both as floats)."""

    @staticmethod
    def forward(ctx, a, s, invert, pa, ps):
        ctx.invert, ctx.pa, ctx.ps = invert, pa, ps
        ctx.save_for_backward(pa.bits, ps.bits)
        return a * (1.0 - s) if invert else a * s

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        bits_a, bits_s = ctx.saved_tensors
        pa, ps = ctx.pa, ctx.ps
        a, s = _restore(bits_a, pa), _restore(bits_s, ps)
        if ctx.invert:
            return g * (1.0 - s), -(g * a), None, None, None
        return g * s, g * a, None, None, None


def spike_and(a, s, invert=False):
    """``a * s`` (``invert``: ``a * (1 - s)``) for a SEW block's AND/IAND connection,
    keeping ``a`` and ``s`` packed when they are marked (see :func:`mark`); the result is
    marked too."""
    ca, cs = codes(a), codes(s)
    if not (active(a) and ca and cs == (1.0, 1) and a.shape == s.shape
            and (a.requires_grad or s.requires_grad)):
        return mark_product(a * (1.0 - s) if invert else a * s, a, s)
    out = _SpikeAnd.apply(a, s, invert, encode_known(a, *ca), encode_known(s, *cs))
    return mark(out, *ca)


class _SpikeMatmul(torch.autograd.Function):
    """``a @ b`` (same batch shape) keeping the marked operands packed."""

    @staticmethod
    def forward(ctx, a, b, pa, pb):
        ctx.pa, ctx.pb = pa, pb
        ctx.save_for_backward(a if pa is None else pa.bits, b if pb is None else pb.bits)
        return a @ b

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        ka, kb = ctx.saved_tensors
        a, b = _restore(ka, ctx.pa), _restore(kb, ctx.pb)
        ga = g @ b.transpose(-2, -1) if ctx.needs_input_grad[0] else None
        gb = a.transpose(-2, -1) @ g if ctx.needs_input_grad[1] else None
        return ga, gb, None, None


def _restore(kept, p):
    """A saved tensor back: ``kept`` itself when ``p`` is None, else the tensor the
    :class:`PackedSpikes` ``p`` (whose bits autograd kept as ``kept``) stands for."""
    return kept if p is None else decode(PackedSpikes(kept, p.shape, p.dtype, p.numel, p.scale))


def spike_matmul(a, b):
    """``a @ b`` keeping a marked operand (spikes, see :func:`mark`) packed for backward:
    a spiking attention's ``q @ k^T`` and ``(q k^T) @ v``. Plain ``a @ b`` when neither
    is marked, when the batch shapes differ (broadcasting) or when compact saving is
    off."""
    ca, cb = codes(a), codes(b)
    if not ((ca or cb) and active(a) and a.dim() == b.dim() >= 2
            and a.shape[:-2] == b.shape[:-2] and (a.requires_grad or b.requires_grad)):
        return a @ b
    pa = encode_known(a, *ca) if ca else None
    pb = encode_known(b, *cb) if cb else None
    out = _SpikeMatmul.apply(a, b, pa, pb)
    if ca and cb and ca[0] == cb[0] == 1.0 and ca[1] * cb[1] * a.shape[-1] <= 255:
        mark(out, 1.0, ca[1] * cb[1] * a.shape[-1])  # counts of coincident spikes
    return out


def decode(p):
    """The tensor :func:`encode` was given, bit for bit (contiguous)."""
    if p.scale == 0.0:
        return _from_bits(p.bits, p.numel).to(p.dtype).view(p.shape)
    out = p.bits.to(p.dtype)
    return (out if p.scale == 1.0 else out / p.scale).view(p.shape)


def pack(t):
    """``t`` as :class:`PackedSpikes` when it holds only zeros and ones (at least 64 of
    them: smaller ones are not worth it), else ``t`` itself."""
    if t.device.type == "meta" or not (t.is_floating_point() and t.numel() >= 64):
        return t
    p = encode(t)
    return p if p is not None and p.scale == 0.0 else t


def unpack(p):
    """The tensor :func:`pack` was given, bit for bit (contiguous)."""
    return decode(p) if isinstance(p, PackedSpikes) else p


@contextlib.contextmanager
def packed_spikes(enabled=True):
    """Within this context, tensors saved for backward that hold only 0 and 1 are kept
    as bits, whichever operation saves them. ``enabled=False`` is a no-op, for a switch."""
    if not enabled:
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield


# ---- layers that keep their input packed --------------------------------------------------


def _conv_args(m):
    return (m.stride, m.padding, m.dilation, m.groups)


def _conv_fwd(m, x, w, b):
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[w.dim() - 2]
    return conv(x, w, b, *_conv_args(m))


def _conv_bwd(m, g, x, w, mask):
    n = w.dim() - 2
    bias = [w.shape[0]] if mask[2] else None
    return torch.ops.aten.convolution_backward(
        g, x, w, bias, list(m.stride), list(m.padding), list(m.dilation), False, [0] * n,
        m.groups, list(mask),
    )


def _linear_fwd(m, x, w, b):
    return F.linear(x, w, b)


def _linear_bwd(m, g, x, w, mask):
    g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    gx = (g @ w) if mask[0] else None
    gw = (g2.t() @ x2) if mask[1] else None
    gb = g2.sum(0) if mask[2] else None
    return gx, gw, gb


_WEIGHTED = {
    nn.Conv1d: (_conv_fwd, _conv_bwd),
    nn.Conv2d: (_conv_fwd, _conv_bwd),
    nn.Conv3d: (_conv_fwd, _conv_bwd),
    nn.Linear: (_linear_fwd, _linear_bwd),
}


class _PackedInput(torch.autograd.Function):
    """A conv or linear layer whose input is kept as codes: the backward restores it and
    calls the layer's own backward (no recompute)."""

    @staticmethod
    def forward(ctx, x, w, b, m, p):
        fwd, ctx.bwd = _WEIGHTED[type(m)]
        ctx.m, ctx.p = m, p
        ctx.save_for_backward(p.bits, w)
        return fwd(m, x, w, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        bits, w = ctx.saved_tensors
        p = ctx.p
        x = _restore(bits, p)
        gx, gw, gb = ctx.bwd(ctx.m, g.contiguous(), x, w, ctx.needs_input_grad[:3])
        return gx, gw, gb, None, None


class _PackedPool(torch.autograd.Function):
    """A pool whose input is kept as codes (autograd would keep it as floats): the
    backward recomputes the pool (a max pool's indices) from the restored input."""

    @staticmethod
    def forward(ctx, x, m, p):
        ctx.m, ctx.p = m, p
        ctx.save_for_backward(p.bits)
        with torch.no_grad():
            return m(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (bits,) = ctx.saved_tensors
        p = ctx.p
        x = _restore(bits, p).requires_grad_()
        with torch.enable_grad():
            out = ctx.m(x)
        return torch.autograd.grad(out, x, g)[0], None, None


def _stand_in(like):
    """A broadcast empty scalar of the input's shape, dtype and device: the pools' aten
    backwards read the input's sizes only."""
    shape, dtype, device = like
    return torch.empty((), dtype=dtype, device=device).expand(shape)


def _window(m):
    """A 2-d pool's kernel, stride, padding and dilation as lists of two."""

    def pair(v):
        return list(v) if isinstance(v, tuple) else [v, v]

    return (pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding),
            pair(getattr(m, "dilation", 1)))  # fmt: skip


class _AvgPool(torch.autograd.Function):
    """A 2-d average pool keeping nothing: its backward needs the input's shape only."""

    @staticmethod
    def forward(ctx, x, m):
        ctx.m, ctx.like = m, (x.shape, x.dtype, x.device)
        with torch.no_grad():
            return m(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        m = ctx.m
        gx = torch.ops.aten.avg_pool2d_backward(
            g.contiguous(), _stand_in(ctx.like), *_window(m)[:3], m.ceil_mode,
            m.count_include_pad, m.divisor_override,
        )
        return gx, None


class _MaxPool(torch.autograd.Function):
    """A 2-d max pool keeping its indices (positions in a frame) as int16 where frames are
    small enough, int32 otherwise (autograd keeps the float input and int64 indices):
    the backward needs the indices and the input's shape only."""

    @staticmethod
    def forward(ctx, x, m):
        ctx.m, ctx.like = m, (x.shape, x.dtype, x.device)
        with torch.no_grad():
            out, idx = F.max_pool2d(
                x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, True
            )
        small = x.shape[-1] * x.shape[-2] <= torch.iinfo(torch.int16).max
        ctx.save_for_backward(idx.to(torch.int16 if small else torch.int32))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        m = ctx.m
        gx = torch.ops.aten.max_pool2d_with_indices_backward(
            g.contiguous(), _stand_in(ctx.like), *_window(m), m.ceil_mode, idx.long()
        )
        return gx, None


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
#: modules that move values without changing them (their output keeps the input's codes)
_RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)


# ---- BatchNorm keeping its input only; the neuron after it recomputes its output --------


def _momentum(m):
    """The factor ``nn.BatchNorm`` blends its running statistics with (``momentum``, or
    the cumulative average when it is None), counting the batch as it does."""
    if not (m.track_running_stats and m.running_mean is not None):
        return 0.0
    m.num_batches_tracked.add_(1)
    return 1.0 / float(m.num_batches_tracked) if m.momentum is None else m.momentum


def _normalise(y, w, b, mean, var, eps):
    """BatchNorm's output from given batch statistics (aten's normalisation with the
    statistics in place of running ones): the forward and the neuron's recompute call
    this same operation on the same tensors, so they get the same bits."""
    return torch.ops.aten._native_batch_norm_legit_no_training(y, w, b, mean, var, 0.0, eps)[0]


class _Norm(torch.autograd.Function):
    """BatchNorm in training mode keeping its input and the batch statistics (what its
    backward needs) and nothing else; ``box`` receives the statistics."""

    @staticmethod
    def forward(ctx, y, w, b, m, box):
        if m.track_running_stats and m.running_mean is not None:
            f = _momentum(m)
            mean, var = torch.batch_norm_update_stats(y, m.running_mean, m.running_var, f)
        else:
            mean, var = torch.batch_norm_update_stats(y, None, None, 0.0)
        box += [mean, var]
        ctx.eps = m.eps
        ctx.save_for_backward(y, w, mean, var)
        return _normalise(y, w, b, mean, var, m.eps)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        y, w, mean, var = ctx.saved_tensors
        invstd = torch.rsqrt(var + ctx.eps)
        gy, gw, gb = torch.ops.aten.native_batch_norm_backward(
            g.contiguous(), y, w, None, None, mean, invstd, True, ctx.eps,
            list(ctx.needs_input_grad[:3]),
        )
        return gy, gw, gb, None, None


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

_RECIPE = "_snetx_recipe"


def recipe(x):
    """``(tensors, fn)`` with ``fn(*tensors)`` equal to ``x`` bit for bit, when ``x`` came
    from a compact BatchNorm and has not been modified since; else None. A neuron keeps
    ``tensors`` (already kept by the BatchNorm) instead of ``x``."""
    if torch.compiler.is_compiling():
        return None
    r = getattr(x, _RECIPE, None)
    if r is None or r[0] != x._version:
        return None
    return r[1], r[2]


def save_input(ctx, x, *others):
    """``ctx.save_for_backward(x, *others)`` for a neuron, or, when ``x`` is a compact
    BatchNorm's output (:func:`recipe`), what that BatchNorm keeps in place of ``x``.
    :func:`saved_input` gives them back."""
    r = recipe(x)
    ctx.snetx_rebuild, ctx.snetx_others = (None if r is None else r[1]), len(others)
    ctx.save_for_backward(x if r is None else None, *others, *(() if r is None else r[0]))


def saved_input(ctx):
    """``(x, *others)`` as :func:`save_input` was given them (``x`` recomputed, bit for
    bit, when its recipe was kept)."""
    x, *rest = ctx.saved_tensors
    others, kept = rest[: ctx.snetx_others], rest[ctx.snetx_others :]
    if ctx.snetx_rebuild is not None:
        with torch.no_grad():
            x = ctx.snetx_rebuild(*kept)
    return (x, *others)


def _rebuild(eps, n, t):
    return lambda y, w, b, mean, var: _normalise(y, w, b, mean, var, eps).unflatten(0, (n, t))


def saved_storages(run, exclude=()):
    """``{storage address: (bytes, dtype)}`` of what autograd keeps for backward while
    ``run()`` records a graph: the distinct storages of the tensors saved (through
    ``torch.autograd.graph.saved_tensors_hooks``), less those of ``exclude`` (tensors:
    the parameters, the input). For measuring, as the tests and benchmarks do."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen = {}

    def keep(t):
        if t.device.type != "meta":
            st = t.untyped_storage()
            if st.data_ptr() not in skip:
                seen[st.data_ptr()] = (st.nbytes(), t.dtype)
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        run()
    return seen


# ---- the dispatch Tosnn uses ---------------------------------------------------------------


def _hooked(m):
    from torch.nn.modules import module as _mod

    return bool(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
        or _mod._global_forward_hooks or _mod._global_forward_pre_hooks
    )


def active(x):
    """Whether compact saving applies to a layer reading ``x`` now."""
    return (
        _ENABLED[0]
        and (torch.is_grad_enabled() or _IN_CHECKPOINT[0])
        and x.device.type in ("cpu", "cuda")
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()  # a trace records the torch modules, not ours
        # autocast casts inside the layers; their backward would see the uncast tensors
        and not torch.is_autocast_enabled(x.device.type)
    )


def _pool_codes(m, c):
    """The marks of a pool's output given its input's ``c``."""
    if c is None:
        return None
    if isinstance(m, _POOLS):
        return c
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
    if m.padding not in (0, (0, 0)) or m.ceil_mode or m.divisor_override:
        return None
    area = k[0] * k[1]
    scale, top = c[0] * area, c[1] * area
    # exact only when the division is by a power of two
    return (scale, top) if area & (area - 1) == 0 and top <= 255 else None


_PACKED = "_snetx_packed"


def _shared_pack(owner, x, c):
    """``x`` (a flat view of ``owner``) packed once for every layer that reads ``owner``
    (a residual block's input feeds its branch and its shortcut): the packed copy hangs
    on ``owner`` while ``owner`` is unchanged."""
    kept = getattr(owner, _PACKED, None)
    if kept is not None and kept[0] == owner._version and kept[1].shape == x.shape:
        return kept[1]
    p = encode_known(x, *c)
    setattr(owner, _PACKED, (owner._version, p))
    return p


def _one(m, x, c, last, owner=None):
    """``(m(x), codes of the output, recipe)`` with compact saving where ``m`` allows it;
    ``c`` the input's codes, ``owner`` the tensor ``x`` is a view of (or None)."""
    kind = type(m)
    if _hooked(m):
        return m(x), None, None
    if kind in _WEIGHTED:
        plain = c is None or not torch.is_grad_enabled() or not (
            x.requires_grad or m.weight.requires_grad
        )
        if plain or kind is not nn.Linear and (
            isinstance(m.padding, str) or m.padding_mode != "zeros"
        ):
            return m(x), None, None
        p = encode_known(x, *c) if owner is None else _shared_pack(owner, x, c)
        return _PackedInput.apply(x, m.weight, m.bias, m, p), None, None
    if kind is nn.AvgPool2d:
        if not x.requires_grad or x.dim() != 4:
            return m(x), _pool_codes(m, c), None
        return _AvgPool.apply(x, m), _pool_codes(m, c), None
    if kind is nn.MaxPool2d and x.dim() == 4 and not m.return_indices and x.requires_grad:
        return _MaxPool.apply(x, m), c, None
    if kind in _POOLS and not m.return_indices:
        out_codes = _pool_codes(m, c)
        if c is None or not x.requires_grad:
            return m(x), out_codes, None
        return _PackedPool.apply(x, m, encode_known(x, *c)), out_codes, None
    if kind in _RESHAPES:
        return m(x), c, None
    if kind in _NORMS and m.training and x.dtype in (torch.float32, torch.float64):
        if not (x.requires_grad or (m.weight is not None and m.weight.requires_grad)):
            return m(x), None, None
        box = []
        out = _Norm.apply(x, m.weight, m.bias, m, box)
        return out, None, ((x, m.weight, m.bias, *box, m.eps) if last else None)
    return m(x), None, None


def per_frame(module, x, c=None, owner=None):
    """``(module(x), codes, recipe)`` for :class:`~snetx.snn.algorithm.Tosnn`: ``module``
    (or each part of an ``nn.Sequential``) run with compact saving where it applies;
    ``c`` the :func:`codes` of ``x``, ``owner`` the tensor ``x`` flattens (its packed
    copy is shared by the layers that read it). ``codes`` are the output's (a pool of
    spikes), the recipe ``(y, weight, bias, mean, var, eps)`` when the output is a
    compact BatchNorm's."""
    if not active(x):
        return module(x), None, None
    if type(module) is not nn.Sequential or _hooked(module):
        return _one(module, x, c, True, owner)
    parts, r = list(module), None
    for i, m in enumerate(parts):
        x, c, r = _one(m, x, c, i == len(parts) - 1, owner if i == 0 else None)
    return x, c, r


def tag(out, c, r, n, t):
    """Attach :func:`per_frame`'s codes and recipe to Tosnn's unflattened output."""
    if c is not None:
        mark(out, *c)
    if r is not None:
        setattr(out, _RECIPE, (out._version, r[:-1], _rebuild(r[-1], n, t)))
    return out


# ---- checkpointing: keep a module's packed input, recompute the rest ----------------------


def _holders(module):
    """The modules that keep a state across calls (``stateful``/``state``), outermost
    only (a Recurrent's inner neuron is its own business)."""
    found, inner = [], set()
    for m in module.modules():
        if id(m) in inner:
            continue
        if hasattr(m, "stateful") and hasattr(m, "state"):
            found.append(m)
            inner.update(id(d) for d in m.modules() if d is not m)
    return found


class _Segment(torch.autograd.Function):
    """One checkpointed call: ``apply(x, p, run, n_states, *states, *params)`` ->
    ``(out, *final states)``; ``run(x, states)`` returns ``(out, final states)``. Keeps
    ``p`` (the packed x) or x, the initial states and the RNG state."""

    @staticmethod
    def forward(ctx, x, p, run, n_states, *rest):
        ctx.run, ctx.p, ctx.n_states = run, p, n_states
        ctx.rng = torch.get_rng_state()
        ctx.cuda_rng = torch.cuda.get_rng_state(x.device) if x.device.type == "cuda" else None
        states = rest[:n_states]
        with torch.no_grad():
            out, final = run(x, states)
        ctx.save_for_backward(p.bits if p is not None else x, *states)
        return (out, *final)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, *g_final):
        kept, *states = ctx.saved_tensors
        p = ctx.p
        x = _restore(kept, p).detach().requires_grad_(ctx.needs_input_grad[0])
        states = [s.detach().requires_grad_(s.is_floating_point()) for s in states]
        devices = [x.device] if ctx.cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.set_rng_state(ctx.rng)
            if ctx.cuda_rng is not None:
                torch.cuda.set_rng_state(ctx.cuda_rng, x.device)
            out, final = ctx.run(x, states, recompute=True)
        params = ctx.run.params
        outs = [out, *final]
        grads = [g_out, *g_final]
        keep = [(o, g) for o, g in zip(outs, grads)
                if g is not None and o is not None and o.requires_grad]
        inputs = [x, *states, *params]
        wanted = [t for t in inputs if t.requires_grad]
        got = torch.autograd.grad(
            [o for o, _ in keep], wanted, [g for _, g in keep], allow_unused=True
        ) if keep and wanted else [None] * len(wanted)
        it = iter(got)
        result = [next(it) if t.requires_grad else None for t in inputs]
        return (result[0], None, None, None, *result[1:])


class _Runner:
    """Runs a module on one segment from given holder states (the autograd Function's
    ``run``): sets the holders' states, calls the module, reads them back, and on a
    recompute puts the module's buffers (BatchNorm statistics) back as they were."""

    def __init__(self, module, holders, specs):
        self.module, self.holders, self.specs = module, holders, specs
        self.params = [q for q in module.parameters() if q.requires_grad]

    def __call__(self, x, states, recompute=False):
        from torch.utils import _pytree

        buffers = [b.clone() for b in self.module.buffers()] if recompute else None
        before = [(h.state, h.stateful) for h in self.holders]
        flat = list(states)
        for h, spec in zip(self.holders, self.specs):
            h.stateful = True
            if spec is None:
                h.state = None
            else:
                n = spec.num_leaves
                h.state, flat = _pytree.tree_unflatten(flat[:n], spec), flat[n:]
        replay, _IN_CHECKPOINT[0] = _IN_CHECKPOINT[0], not recompute
        try:
            out = self.module(x)
        finally:
            _IN_CHECKPOINT[0] = replay
        final, self.final_specs = [], []
        for h in self.holders:
            leaves, spec = _pytree.tree_flatten(h.state)
            final += leaves
            self.final_specs.append((len(leaves), spec))
        if recompute:  # the live module is left as the forward left it
            for h, (state, stateful) in zip(self.holders, before):
                h.state, h.stateful = state, stateful
            with torch.no_grad():
                for b, saved in zip(self.module.buffers(), buffers):
                    b.copy_(saved)
        else:
            self.out_codes = codes(out)
        return out, final


class Checkpoint(nn.Module):
    r"""Keep only the input of ``module`` for backward (packed when it is marked as spikes
    or small codes, see :func:`mark`) and recompute ``module`` in backward.

    With ``chunk=K`` the sequence (``N x T x ...``) runs ``K`` steps at a time, each chunk
    a checkpoint of its own: the neurons hand their state over from chunk to chunk (as a
    ``stateful`` neuron does across calls), so spikes and gradients are those of one call
    on the whole sequence, and backward holds one chunk's activations at a time. A
    BatchNorm in training mode takes its statistics over all of T, which chunks would
    change: chunking refuses it.

    Gradients are exactly those of ``module`` (the recompute replays the random state and
    puts BatchNorm's running statistics back). The cost is one more forward of
    ``module``.

    Args:
        module: the part of the network to checkpoint (a block, a stack of layers).
        chunk (int or None): time steps per chunk; None, the whole sequence at once.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from snetx.snn import memory, neuron
        >>> from snetx.snn.algorithm import Tosnn
        >>> net = memory.Checkpoint(
        ...     nn.Sequential(Tosnn(nn.Linear(16, 32)), neuron.LIF(), Tosnn(nn.Linear(32, 4))),
        ...     chunk=25,
        ... )
        >>> out = net(torch.rand(2, 100, 16))
        >>> out.sum().backward()
        >>> out.shape
        torch.Size([2, 100, 4])
    """

    def __init__(self, module, chunk=None):
        super().__init__()
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                                  or chunk < 1):
            raise ValueError(f"chunk must be a positive int or None, got {chunk!r}")
        self.module, self.chunk = module, chunk

    def extra_repr(self):
        return "" if self.chunk is None else f"chunk={self.chunk}"

    def forward(self, x):
        return checkpointed(self.module, x, self.chunk)


def checkpointed(module, x, chunk=None):
    """``module(x)`` as :class:`Checkpoint` ``(module, chunk)`` runs it, without wrapping
    ``module``."""
    if not (torch.is_grad_enabled() and x.device.type in ("cpu", "cuda")) or (
        torch.compiler.is_compiling()
    ):
        return module(x)
    if chunk is not None:
        for m in module.modules():
            if isinstance(m, _NORMS) and m.training:
                raise ValueError(
                    f"Checkpoint(chunk={chunk}) cannot run {type(m).__name__} in "
                    "training mode: its statistics are over all of T (chunk=None, or "
                    "eval())"
                )
    holders = _holders(module)
    kept = [(h.stateful, h.state) for h in holders]
    pieces = [x] if chunk is None else list(x.split(chunk, dim=1))
    outs = []
    try:
        for h in holders:
            h.stateful = True
        for piece in pieces:
            outs.append(_segment(module, piece, holders))
    finally:
        for h, (stateful, state) in zip(holders, kept):
            h.stateful = stateful
            if not stateful:
                h.state = state
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def _segment(module, x, holders):
    from torch.utils import _pytree

    specs, states = [], []
    for h in holders:
        if h.state is None:
            specs.append(None)
        else:
            leaves, spec = _pytree.tree_flatten(h.state)
            specs.append(spec)
            states += leaves
    c = codes(x)
    p = encode_known(x, *c) if c is not None else None
    run = _Runner(module, holders, specs)
    out, *final = _Segment.apply(x, p, run, len(states), *states, *run.params)
    it = iter(final)
    for h, (n, spec) in zip(holders, run.final_specs):
        h.state = _pytree.tree_unflatten([next(it) for _ in range(n)], spec)
    return out if run.out_codes is None else mark(out, *run.out_codes)


def checkpoint(module, chunk=None):
    """:class:`Checkpoint` ``(module, chunk)``."""
    return Checkpoint(module, chunk)


def _is_holder(m):
    return hasattr(m, "stateful") and hasattr(m, "state")


class _Grouped(nn.Sequential):
    """An ``nn.Sequential`` whose groups of children (a layer and its neuron, a block) run
    as checkpoints: :func:`checkpoint_layers` turns a Sequential into one in place, so
    that parameter names do not change."""

    def forward(self, x):
        parts = list(self)
        for checked, idx in self._snetx_plan:
            group = [parts[i] for i in idx]
            if not checked:
                x = group[0](x)
            else:
                m = group[0] if len(group) == 1 else nn.Sequential(*group)
                x = checkpointed(m, x, self._snetx_chunk)
        return x


def _wrap(seq, chunk):
    """Plan the checkpoint groups of ``seq`` (an ``nn.Sequential``) in place."""
    parts, plan, i = list(seq), [], 0
    while i < len(parts):
        m = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if type(m) in (nn.Sequential, _Grouped):
            _wrap(m, chunk)
            plan.append((False, [i]))
        elif not _holders(m) and nxt is not None and _is_holder(nxt):
            plan.append((True, [i, i + 1]))  # a layer and its neuron
            i += 1
        elif _holders(m) and not _is_holder(m) and not isinstance(m, Checkpoint):
            plan.append((True, [i]))  # a block holding neurons
        else:
            plan.append((False, [i]))
        i += 1
    seq.__class__ = _Grouped
    seq._snetx_plan, seq._snetx_chunk = plan, chunk


def checkpoint_layers(model, chunk=None):
    """Run, from now on, each layer followed by its neuron (``Tosnn(conv -> norm)``, then
    the neuron) and each block holding neurons (a residual block) of every
    ``nn.Sequential`` in ``model`` as a :class:`Checkpoint`: backward then keeps one
    packed input per layer. The Sequentials change in place (their class); module and
    parameter names stay, so state dicts load either way. Returns ``model``."""
    if type(model) in (nn.Sequential, _Grouped):
        _wrap(model, chunk)
        return model
    for child in model.children():
        if type(child) in (nn.Sequential, _Grouped):
            _wrap(child, chunk)
        elif _holders(child) and not _is_holder(child) and not isinstance(child, Checkpoint):
            checkpoint_layers(child, chunk)
    return model
