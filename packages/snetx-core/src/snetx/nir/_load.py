"""NIR graph -> an ``nn.Module`` running it on ``N x T x ...`` with snetx's neurons."""

import math
import warnings
from typing import Dict, List

import nir
import numpy as np
import torch
from torch import nn

from snetx.snn import _nir_fields
from snetx.snn.algorithm import Tosnn
from snetx.snn.layer import Recurrent
from snetx.snn.neuron import SpikingNeuron

#: An IF whose input scale ``r dt`` falls below this is almost surely loaded with the wrong
#: ``dt`` (a network that never spikes): load() warns.
TINY_SCALE = 1e-2


class NIRImportError(ValueError):
    """A NIR graph uses something snetx cannot run; the message names the node."""


def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def _finite(name, field, a):
    try:
        return _nir_fields.finite(field, a)
    except ValueError as e:
        raise NIRImportError(f"node {name}: {e}") from None


class Scale(nn.Module):
    """``x -> scale * x + shift`` (per channel along dim 2 when the tensors have C values):
    the input factor ``r dt / tau`` of a NIR neuron that could not be folded into weights."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, x):
        view = (-1,) + (1,) * (x.dim() - 3) if self.scale.dim() else ()
        return x * self.scale.reshape(view) + self.shift.reshape(view)


def _readers():
    """NIR node type -> the snetx neuron class whose ``from_nir`` reads it: every neuron
    class (snetx's and any user subclass) that names the type in its ``nir_nodes``."""
    found, todo = {}, [SpikingNeuron]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        for kind in cls.__dict__.get("nir_nodes", ()):
            found.setdefault(kind, cls)
    return found


def _neuron(name, node, dt):
    """(snetx neuron, input scale per channel, input shift per channel) of a neuron node,
    by the ``from_nir`` of the class that reads its type."""
    cls = _readers()[type(node).__name__]
    try:
        neuron, scale, shift = cls.from_nir(node, dt)
    except ValueError as e:
        raise NIRImportError(f"node {name}: {e}") from None
    if type(node).__name__ == "IF" and np.any(np.abs(scale) < TINY_SCALE):
        warnings.warn(
            f"snetx.nir.load: IF node {name} scales its input by r*dt = "
            f"{np.abs(scale).min():g} (dt {dt:g}): it will hardly ever spike; graphs "
            "written with r = 1 assume dt = 1 (Sinabs), pass load(graph, dt=1.0)",
            stacklevel=3,
        )
    return neuron, scale, shift


def _weights(name, node):
    """(weight, bias or None) of a weighted node, checked: finite, a bias of one value
    per output."""
    w = _finite(name, "weight", node.weight)
    bias = getattr(node, "bias", None)
    if bias is None:
        return w, None
    b = _finite(name, "bias", bias)
    if b.ndim == 0 and b == 0:  # NIR writers store "no bias" as a scalar 0
        b = np.zeros(w.shape[0])
    if b.shape != (w.shape[0],):
        raise NIRImportError(
            f"node {name}: bias has shape {tuple(b.shape)}, expected ({w.shape[0]},) "
            f"for a weight of shape {tuple(w.shape)}"
        )
    return w, b


def _module(name, node):
    if isinstance(node, (nir.Affine, nir.Linear)):
        w, b = _weights(name, node)
        if w.ndim != 2:
            raise NIRImportError(f"node {name}: weight has shape {w.shape}, expected 2 dims")
        m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            m.weight.copy_(_t(w))
            if b is not None:
                m.bias.copy_(_t(b))
        return m
    if isinstance(node, nir.Conv2d):
        w, b = _weights(name, node)
        padding = (
            node.padding
            if isinstance(node.padding, str)
            else tuple(np.atleast_1d(node.padding).tolist())
        )
        m = nn.Conv2d(
            w.shape[1] * int(node.groups), w.shape[0], tuple(w.shape[-2:]),
            stride=tuple(np.atleast_1d(node.stride).tolist()), padding=padding,
            dilation=tuple(np.atleast_1d(node.dilation).tolist()), groups=int(node.groups),
        )  # fmt: skip
        with torch.no_grad():
            m.weight.copy_(_t(w))
            m.bias.copy_(_t(b) if b is not None else torch.zeros(w.shape[0]))
        return Tosnn(m)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k = tuple(int(v) for v in np.atleast_1d(node.kernel_size))
        s = tuple(int(v) for v in np.atleast_1d(node.stride))
        p = tuple(int(v) for v in np.atleast_1d(node.padding))
        k, s, p = (k * 2)[:2], (s * 2)[:2], (p * 2)[:2]
        divisor = 1 if isinstance(node, nir.SumPool2d) else None
        return Tosnn(nn.AvgPool2d(k, s, p, count_include_pad=True, divisor_override=divisor))
    if isinstance(node, nir.Flatten):
        end = node.end_dim if node.end_dim < 0 else node.end_dim + 2
        return nn.Flatten(node.start_dim + 2, end)
    raise NIRImportError(
        f"node {name} ({type(node).__name__}) is not supported by snetx.nir.load "
        "(supported: Input, Output, Affine, Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, "
        "LIF, IF, CubaLIF, subgraphs, and recurrence neuron -> Affine/Linear -> neuron)"
    )


class NIRModule(nn.Module):
    """A NIR graph run on whole sequences: each node reads the sum of its inputs, in
    topological order; neurons run over all T steps at once (snetx's fused kernels).

    Shape:
        - Input: :math:`(N, T, *)` with ``*`` the graph's input shape
        - Output: :math:`(N, T, *')`
    """

    def __init__(self, nodes: Dict[str, nn.Module], order: List[str], inputs, output, in_shape):
        super().__init__()
        self.layers = nn.ModuleDict({k.replace(".", "_"): v for k, v in nodes.items()})
        self._keys = {k: k.replace(".", "_") for k in nodes}
        self.order, self.sources, self.output = order, inputs, output
        self.in_shape = tuple(in_shape)

    def forward(self, x):
        if tuple(x.shape[2:]) != self.in_shape:
            raise ValueError(
                f"this NIR graph takes N x T x {' x '.join(map(str, self.in_shape))}, got "
                f"{tuple(x.shape)}"
            )
        values = {"__input__": x}
        for name in self.order:
            srcs = self.sources[name]
            h = values[srcs[0]]
            for s in srcs[1:]:
                h = h + values[s]
            values[name] = self.layers[self._keys[name]](h)
        return values[self.output]


def _fold_scale(nodes, sources, consumers, name, scale, shift):
    """Put a neuron's input factor into the weights that feed it alone; True if done."""
    layers = []
    for f in sources[name]:
        m = nodes.get(f)
        layer = m.module if isinstance(m, Tosnn) else m
        if not isinstance(layer, (nn.Linear, nn.Conv2d)) or consumers[f] != [name]:
            return False
        layers.append(layer)
    sc = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    if np.any(shift != 0) or any(sc.numel() not in (1, m.weight.shape[0]) for m in layers):
        return False
    with torch.no_grad():
        for layer in layers:
            view = (-1,) + (1,) * (layer.weight.dim() - 1)
            layer.weight.copy_((layer.weight.double() * sc.reshape(view)).float())
            if layer.bias is not None:
                layer.bias.copy_((layer.bias.double() * sc).float())
    return True


def _dt(dt):
    """``dt`` as a float: a Python, NumPy or 0-dim tensor number, finite and > 0."""
    if isinstance(dt, torch.Tensor) and dt.numel() == 1:
        dt = dt.item()
    if isinstance(dt, np.ndarray) and dt.size == 1:
        dt = dt.item()
    if isinstance(dt, np.generic):
        dt = dt.item()
    if (
        isinstance(dt, bool)
        or not isinstance(dt, (int, float))
        or not (math.isfinite(dt) and dt > 0)
    ):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    return float(dt)


def _inline(graph):
    """(nodes, edges) of ``graph`` with every subgraph node inlined: its inner nodes named
    ``<subgraph>.<node>``, the edges into and out of it joined to what its Input feeds and
    what feeds its Output (snnTorch writes recurrent layers as such subgraphs)."""
    nodes, edges, entry, exit_ = {}, [], {}, {}
    for k, v in graph.nodes.items():
        if not isinstance(v, nir.NIRGraph):
            nodes[k] = v
            continue
        inner_nodes, inner_edges = _inline(v)
        ins = [a for a, n in inner_nodes.items() if isinstance(n, nir.Input)]
        outs = [a for a, n in inner_nodes.items() if isinstance(n, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise NIRImportError(f"subgraph {k}: one Input and one Output node, got {ins}, {outs}")
        if (ins[0], outs[0]) in inner_edges:
            raise NIRImportError(f"subgraph {k}: its Input feeds its Output directly")
        for a, n in inner_nodes.items():
            if a not in (ins[0], outs[0]):
                nodes[f"{k}.{a}"] = n
        entry[k] = [f"{k}.{b}" for a, b in inner_edges if a == ins[0]]
        exit_[k] = [f"{k}.{a}" for a, b in inner_edges if b == outs[0]]
        entry[f"{k}.{ins[0]}"], exit_[f"{k}.{outs[0]}"] = entry[k], exit_[k]
        edges += [(f"{k}.{a}", f"{k}.{b}") for a, b in inner_edges
                  if a != ins[0] and b != outs[0]]  # fmt: skip
    for a, b in graph.edges:
        edges += [(x, y) for x in exit_.get(a, [a]) for y in entry.get(b, [b])]
    return nodes, edges


def _recurrences(nodes, sources, consumers):
    """{neuron: weight node} for every cycle neuron -> Affine/Linear -> the same neuron;
    the weight node must feed that neuron alone."""
    found = {}
    for w, node in nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)) or len(sources[w]) != 1:
            continue
        n = sources[w][0]
        if type(nodes[n]).__name__ in _readers() and w in sources[n]:
            if consumers[w] != [n]:
                raise NIRImportError(
                    f"node {w} feeds {n} back (a recurrence) and also {consumers[w]}: snetx "
                    "runs a recurrent weight that feeds its neuron alone"
                )
            found[n] = w
    return found


def _recurrent(name, neuron, node, scale):
    """The neuron wrapped in Recurrent, with the weight node's matrix (and bias) times the
    neuron's input scale (the scale of everything that feeds it)."""
    w, b = _weights(name, node)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise NIRImportError(f"node {name}: a recurrent weight must be square, got {w.shape}")
    sc = np.asarray(scale, dtype=np.float64).reshape(-1, 1)
    rec = Recurrent(neuron, w.shape[0], bias=b is not None)
    with torch.no_grad():
        rec.weight.copy_(_t(w * sc))
        if b is not None:
            rec.bias.copy_(_t(b * sc[:, 0]))
    return rec


def load(graph, dt=None):
    r"""An ``nn.Module`` running the NIR ``graph`` on ``N x T x ...`` inputs.

    Args:
        graph (nir.NIRGraph or str or path): the graph, or a NIR HDF5 file to read.
        dt (float or None): the time step the graph's time constants assume; None takes
            the one :func:`snetx.nir.export` recorded (``metadata["snetx_dt"]``), else
            ``1e-4``.

    Returns:
        NIRModule
    """
    if not isinstance(graph, nir.NIRNode):
        graph = nir.read(str(graph))
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.NIRGraph.from_list(graph)
    if dt is None:
        dt = float(graph.metadata.get("snetx_dt", 1e-4)) if graph.metadata else 1e-4
    dt = _dt(dt)
    graph_nodes, graph_edges = _inline(graph)
    ins = [k for k, v in graph_nodes.items() if isinstance(v, nir.Input)]
    outs = [k for k, v in graph_nodes.items() if isinstance(v, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise NIRImportError(f"a graph with one Input and one Output node, got {ins} and {outs}")
    sources = {k: [] for k in graph_nodes}
    for a, b in graph_edges:
        if a not in graph_nodes or b not in graph_nodes:
            raise NIRImportError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        sources[b].append(a)
    consumers = {k: [b for a, b in graph_edges if a == k] for k in graph_nodes}
    recurrent = _recurrences(graph_nodes, sources, consumers)
    weight_nodes = {}
    for n, w in recurrent.items():  # the back edge becomes the neuron's Recurrent wrapper
        sources[n].remove(w)
        consumers[n].remove(w)
        weight_nodes[n] = graph_nodes.pop(w)
        del sources[w], consumers[w]
    order, done = [], {ins[0]}
    pending = [k for k in graph_nodes if k not in (ins[0], outs[0])]
    while pending:
        ready = [k for k in pending if all(s in done for s in sources[k])]
        if not ready:
            raise NIRImportError(
                f"the graph has a cycle through {pending}: snetx runs recurrence as "
                "neuron -> Affine/Linear -> the same neuron"
            )
        for k in ready:
            order.append(k)
            done.add(k)
            pending.remove(k)
    modules, extra = {}, {}
    for k in order:
        node = graph_nodes[k]
        if type(node).__name__ in _readers():  # a neuron; v_leak: the input's shift
            modules[k], scale, shift = _neuron(k, node, float(dt))
            extra[k] = (scale, shift)
            if k in recurrent:
                modules[k] = _recurrent(recurrent[k], modules[k], weight_nodes[k], scale)
        else:
            modules[k] = _module(k, node)
    for k, (scale, shift) in extra.items():
        if np.all(scale == 1.0) and np.all(shift == 0.0):
            continue
        if not _fold_scale(modules, sources, consumers, k, scale, shift):
            sc = scale[0] if scale.size == 1 else scale
            sh = shift[0] if shift.size == 1 else shift
            modules[k] = nn.Sequential(Scale(sc, sh), modules[k])
    srcs = {k: ["__input__" if s == ins[0] else s for s in sources[k]] for k in order}
    if len(sources[outs[0]]) != 1:
        raise NIRImportError(
            f"the Output node {outs[0]!r} has {len(sources[outs[0]])} sources "
            f"({', '.join(sources[outs[0]]) or 'none'}); snetx needs exactly one"
        )
    (last,) = sources[outs[0]]
    if last == ins[0]:
        last = "__input__"  # Input wired straight to Output: the identity
    in_shape = np.asarray(graph_nodes[ins[0]].input_type["input"]).tolist()
    return NIRModule(modules, order, srcs, last, in_shape)
