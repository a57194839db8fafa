"""Record the dataflow of one forward pass between a model's leaf modules.

A leaf is a module without children, a :class:`~snetx.snn.algorithm.Tosnn` (its inner
per-frame modules are read as one chain) or a spiking neuron. Hooks mark when a leaf runs;
a ``TorchFunctionMode`` sees every torch operation between leaves (a residual ``a + b``, a
``torch.flatten``), so models whose ``forward`` has shape checks or Python control flow
are followed as they actually run on the sample input.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from snetx.snn.algorithm import Tosnn
from snetx.snn.layer import Recurrent
from snetx.snn.neuron import SpikingNeuron


class NIRExportError(ValueError):
    """A part of the model has no NIR equivalent; the message names it."""


@dataclass
class Step:
    """One recorded call: a leaf module (``module``) or a torch operation (``op``).

    ``inputs`` are the ids of the steps whose outputs it reads (``"input"`` for the
    model's input); shapes are per sample, without the ``N x T`` axes.
    """

    name: str
    module: Optional[nn.Module]
    op: Optional[str]
    inputs: List[str]
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    args: dict = field(default_factory=dict)


_ALIASES = {"float", "contiguous", "clone", "to", "detach", "type_as"}
_ADDS = {"add", "__add__", "__radd__", "add_", "__iadd__"}
_FLATTENS = {"flatten"}


def is_leaf(module: nn.Module) -> bool:
    leaves = (Tosnn, SpikingNeuron, Recurrent)
    return isinstance(module, leaves) or not any(True for _ in module.children())


def _leaves(model):
    """(name, module) of every leaf, outermost first, not descending into leaves."""
    out = []

    def walk(prefix, module):
        if is_leaf(module):
            out.append((prefix or type(module).__name__, module))
            return
        for name, child in module.named_children():
            walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return out


class _Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.steps: List[Step] = []
        self.producer = {}  # id(tensor) -> step name
        self.keep = []  # tensors whose ids are in producer (ids must not be reused)
        self.depth = 0
        self.pending = []

    def mark(self, tensor, name):
        self.producer[id(tensor)] = name
        self.keep.append(tensor)

    def source(self, tensor, what):
        try:
            return self.producer[id(tensor)]
        except KeyError:
            raise NIRExportError(
                f"{what} reads a tensor that does not come from the model's input "
                "(a constant or a parameter used outside a module has no NIR node)"
            ) from None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.depth or not isinstance(out, torch.Tensor):
            return out
        traced = [a for a in args if isinstance(a, torch.Tensor) and id(a) in self.producer]
        if not traced:
            return out
        name = getattr(func, "__name__", str(func))
        whole = name == "__getitem__" and isinstance(args[1], slice) and args[1] == slice(None)
        if name in _ALIASES or whole:
            self.mark(out, self.producer[id(traced[0])])
            return out
        where = f"torch operation {name!r} between modules"
        if name in _ADDS and len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args):
            if args[0].shape != args[1].shape:
                raise NIRExportError(f"{where} adds tensors of different shapes")
            inputs = [self.source(a, where) for a in args]
            self._add(f"add{len(self.steps)}", None, "add", inputs, args[0], out)
            return out
        if name in _FLATTENS:
            start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
            end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
            x = args[0]
            start, end = start % x.dim(), end % x.dim()
            if start < 2:
                raise NIRExportError(f"{where}: flatten(start_dim={start}) merges the N x T axes")
            inputs = [self.source(x, where)]
            self._add(f"flatten{len(self.steps)}", None, "flatten", inputs, x, out,
                      start_dim=start - 2, end_dim=end - 2)  # fmt: skip
            return out
        raise NIRExportError(f"{where} has no NIR node (supported: +, flatten)")

    def _add(self, name, module, op, inputs, x, out, **args):
        self.steps.append(
            Step(name, module, op, inputs, tuple(x.shape[2:]), tuple(out.shape[2:]), args)
        )
        self.mark(out, name)


def trace(model: nn.Module, sample: torch.Tensor):
    """(steps, output step name) of ``model(sample)``; ``sample`` is ``N x T x ...``."""
    if not isinstance(sample, torch.Tensor) or sample.dim() < 3:
        raise NIRExportError(
            "sample_input must be a tensor N x T x ... (time in dim 1), got "
            f"{tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__}"
        )
    rec = _Recorder()
    handles = []
    for name, module in _leaves(model):

        def pre(mod, inputs, name=name):
            if rec.depth == 0:
                if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
                    raise NIRExportError(f"module {name} takes {len(inputs)} inputs; NIR needs one")
                rec.pending.append([rec.source(inputs[0], f"module {name}"), inputs[0]])
            rec.depth += 1

        def post(mod, inputs, out, name=name):
            rec.depth -= 1
            if rec.depth == 0:
                src, x = rec.pending.pop()
                if not isinstance(out, torch.Tensor):  # an LSTM's (output, state), ...
                    raise NIRExportError(
                        f"module {name} ({type(mod).__name__}) returns "
                        f"{type(out).__name__}, not one tensor; it has no NIR equivalent"
                    )
                if x.dim() < 3 or out.dim() < 3 or out.shape[:2] != x.shape[:2]:
                    raise NIRExportError(
                        f"module {name} does not keep the N x T axes "
                        f"({tuple(x.shape)} -> {tuple(out.shape)})"
                    )
                rec._add(name, mod, None, [src], x, out)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    was_training = model.training
    model.eval()  # BatchNorm folds with its running statistics
    # tracing runs the model once: stateful neurons keep the state they had before
    states = [(m, m.state) for m in model.modules() if hasattr(m, "state") and hasattr(m, "reset")]
    try:
        with torch.no_grad(), rec:
            x = sample.detach().clone()
            rec.mark(x, "input")
            out = model(x)
    finally:
        model.train(was_training)
        for m, state in states:
            m.state = state
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        raise NIRExportError(f"the model returns {type(out).__name__}; NIR needs one tensor")
    return rec.steps, rec.source(out, "the model's output"), tuple(sample.shape[2:])
