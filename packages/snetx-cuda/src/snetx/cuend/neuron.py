r"""snetx.cuend.neuron: the neuron family of :mod:`snetx.snn.neuron` on fused CUDA kernels.

Importing it registers the backend ``"cuda"`` for every neuron with a native struct (the
CUDA driver instantiated per neuron), so ``snetx.snn.neuron.ALIF(backend="cuda")`` runs
here too; the classes below are the snetx.snn ones with that backend by default (so
``isinstance(snetx.cuend.neuron.IF(), snetx.snn.neuron.IF)`` holds)."""

import torch
from snetx.snn import checks as F
from snetx.snn import family, functional
from snetx.snn import neuron as _neuron
from snetx.snn import surrogate as _sg

from . import _compile, _ops

__all__ = ["LIF", "IF", "PLIF", "CubaLIF", "ALIF", "REGISTERED_SG_FUNCLIST", "lif"]

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
            f"snetx.cuend neurons need a CUDA tensor, got one on {x.device}; "
            "use the snetx.snn.neuron classes on the CPU"
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
    spikes, state = functional.run_neuron(
        family.LIF, x, (1.0 / tau,), (v_th, v_reset), v_reset is None, _sg_name(sg), alpha,
        bool(detach), state0=None if u0 is None else (u0,), backend="cuda",
        last=bool(return_state),
    )  # fmt: skip
    return (spikes, state.u) if return_state else spikes


def _run(x, st0, kf, rule):
    """The "cuda" backend of every native neuron: (spikes, st_last ``STATES x N x F``)."""
    if not torch.compiler.is_compiling():
        _runtime_check()
    name, sg = rule.desc.name, _sg_name(rule.sg)
    consts = list(rule.padded)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, st0, kf)):
        spikes, _, st_last = _ops.neuron(
            name, x.contiguous(), st0, kf, consts, rule.soft, rule.alpha, sg, rule.detach
        )
    else:  # evaluation: no checkpoints
        spikes, st_last = _ops.neuron_spikes(name, x.contiguous(), st0, kf, consts, rule.soft)
    return spikes, st_last


_run.check_input = lambda x: check_cuda_input(x)  # first, also for empty inputs
for _name in _compile.native_neurons():
    functional.register_backend(_name, "cuda", _run)


def _resolve_sg(self, sg):
    return _sg_name(sg)


def _on_cuda(cls):
    """``cls`` with the "cuda" backend by default and registered surrogates by name."""
    doc = (
        f":class:`snetx.snn.neuron.{cls.__name__}` on the fused CUDA kernels (the backend "
        '``"cuda"``): the same arguments, state and gradients. ``sg`` is a surrogate name '
        "from :data:`REGISTERED_SG_FUNCLIST` (or a registered Function). Inputs are CUDA "
        "tensors ``N x T x ...`` in float32, float64, float16 or bfloat16 (16-bit I/O keeps "
        "float32 state). Saved for backward: the input x and the state every 8 steps (the "
        "backward recomputes the steps from them); without a graph to record nothing is "
        "saved. Kernels are compiled by CuPy/NVRTC on first use per device, dtype and "
        "neuron and cached on disk; launches go to PyTorch's current stream, so side "
        "streams, CUDA graphs (warm up once before capture) and "
        "``torch.compile(fullgraph=True)`` work."
    )
    attrs = {"backend": "cuda", "_resolve_sg": _resolve_sg, "__doc__": doc, "__module__": __name__}
    return type(cls.__name__, (cls,), attrs)


LIF = _on_cuda(_neuron.LIF)
IF = _on_cuda(_neuron.IF)
PLIF = _on_cuda(_neuron.PLIF)
CubaLIF = _on_cuda(_neuron.CubaLIF)
ALIF = _on_cuda(_neuron.ALIF)
