r"""snetx.cuend.neuron: the LIF of :mod:`snetx.snn.neuron` as fused CUDA kernels."""

import torch
from snetx.snn import checks as F
from snetx.snn import functional
from snetx.snn import neuron as _neuron
from snetx.snn import surrogate as _sg

from . import _ops

__all__ = ["LIF", "IF", "PLIF", "REGISTERED_SG_FUNCLIST", "lif"]

REGISTERED_SG_FUNCLIST = _sg.REGISTERED_SG_FUNCLIST
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _sg_name(sg):
    if isinstance(sg, str):
        return _sg.canonical_name(sg)
    name = _sg.name_of(sg)
    if name is None:
        raise ValueError(
            f"snetx.cuend supports the registered surrogates {REGISTERED_SG_FUNCLIST}; "
            f"got {sg!r}. Use snetx.snn.neuron.LIF for a custom surrogate"
        )
    return name


def check_cuda_input(x):
    F.check_input(x)
    if x.device.type != "cuda":
        raise ValueError(
            f"snetx.cuend.neuron.LIF needs a CUDA tensor, got one on {x.device}; "
            "use snetx.snn.neuron.LIF on the CPU"
        )
    if x.dtype not in _DTYPES:
        raise TypeError(f"snetx.cuend supports float32/float64/float16/bfloat16, got {x.dtype}")


def _runtime_check():
    from . import _runtime

    _runtime.require()


def lif(
    x,
    tau=2.0,
    v_th=1.0,
    v_reset=0.0,
    sg="arctan",
    alpha=4.0,
    detach=False,
    *,
    u0=None,
    return_state=False,
):
    """Functional form of :class:`LIF` (validates its arguments); ``u0`` and
    ``return_state`` as :func:`snetx.snn.functional.lif`."""
    tau, v_th, v_reset = F.check_params(tau, v_th, v_reset)
    alpha = F.resolve_alpha(F.check_alpha(alpha))
    spikes, u_last = _run(x, tau, v_th, v_reset, _sg_name(sg), alpha, bool(detach), u0, None)
    return (spikes, u_last) if return_state else spikes


def _run(x, tau, v_th, v_reset, sg, alpha, detach, u0, k):
    """(spikes, u_last) from the state u0 (None: rest) with the learnable decay k (None:
    1 / tau)."""
    check_cuda_input(x)
    call = functional.prepare_call(x, u0, k)
    if call.empty is not None:  # nothing to launch
        return call.empty
    if not torch.compiler.is_compiling():
        _runtime_check()
    soft = v_reset is None
    rule = (1.0 / tau, v_th, 0.0 if soft else v_reset, soft)
    u0f, kf = call.u0f, call.kf
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, u0f, kf)):
        spikes, _, u_last = _ops.lif(x.contiguous(), u0f, kf, *rule, alpha, sg, detach)
    else:  # evaluation: no h
        spikes, u_last = _ops.lif_spikes(x.contiguous(), u0f, kf, *rule)
    return spikes, u_last.view(functional.step_shape(x))


class LIF(_neuron.LIF):
    r"""Multi-step LIF neuron (docs/specification.md) as one fused CUDA kernel per pass.

    Same arguments and semantics as :class:`snetx.snn.neuron.LIF`, which it extends (only
    how it runs differs, so ``isinstance(m, snetx.snn.neuron.LIF)`` holds); ``sg`` is a surrogate
    name from :data:`REGISTERED_SG_FUNCLIST` (or one of the registered Functions). Inputs
    are CUDA tensors ``N x T x ...`` in float32, float64, float16 or bfloat16 (16-bit I/O
    keeps float32 state). Saved for backward: ``h`` only, in the input dtype; without a
    graph to record (``torch.no_grad``, or an input that needs no gradient) h is not even
    written. Kernels are compiled by CuPy/NVRTC on first use per device and cached on
    disk; launches go to PyTorch's current stream, so side streams, CUDA graphs (warm up
    once before capture) and ``torch.compile(fullgraph=True)`` work.

    Example::

        >>> import torch
        >>> from snetx.cuend import neuron
        >>> lif = neuron.LIF(tau=2.0, sg="arctan")
        >>> if torch.cuda.is_available():
        ...     spikes = lif(torch.rand(8, 4, 128, device="cuda"))
    """

    def _resolve_sg(self, sg):
        return _sg_name(sg)

    def _run(self, x, alpha, u0):
        return _run(
            x, self.tau, self.v_th, self.v_reset, self.sg, alpha, self.detach, u0, self._k()
        )


class IF(LIF):
    """:class:`LIF` with ``tau = 1`` (no leak)."""

    def __init__(self, v_th=1.0, v_reset=0.0, sg="arctan", alpha=4.0, detach=False, stateful=False):
        super().__init__(1.0, v_th, v_reset, sg, alpha, detach, stateful)


class PLIF(LIF, _neuron.PLIF):
    """:class:`snetx.snn.neuron.PLIF` (a learnable time constant) as fused CUDA kernels:
    the same arguments, parameter ``w`` and gradients; the decay's gradient is each
    neuron's share, summed by torch over the batch and the channel (the same bits every
    run)."""
