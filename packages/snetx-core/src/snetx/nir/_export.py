"""snetx model -> NIR graph: the mapping of each part, BatchNorm and ``r`` folding."""

import warnings
from typing import Dict, List

import nir
import numpy as np
import torch
from torch import nn

from snetx.snn.algorithm import Tosnn
from snetx.snn.layer import Recurrent
from snetx.snn.neuron import SpikingNeuron

from ._trace import NIRExportError, trace

_WEIGHTED = ("conv", "affine")
#: NIR node type -> the builder's kind (LIF nodes get their r folded, see fold_r)
_KINDS = {"LIF": "lif", "IF": "if", "CubaLIF": "cubalif"}
_NODES = {"lif": nir.LIF, "if": nir.IF, "cubalif": nir.CubaLIF}


class _Node:
    """A node being built: kind, NIR fields (numpy), sources (node names)."""

    def __init__(self, name, kind, sources, in_shape, out_shape, **fields):
        self.name, self.kind, self.sources = name, kind, list(sources)
        self.in_shape, self.out_shape, self.fields = in_shape, out_shape, fields


def _np(t, dtype=np.float32):
    return t.detach().cpu().numpy().astype(dtype)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _frame_modules(module):
    if isinstance(module, nn.Sequential):
        return [m for child in module for m in _frame_modules(child)]
    return [module]


class _Builder:
    def __init__(self, dt, soft_reset):
        self.dt, self.soft_reset = dt, soft_reset
        self.nodes: Dict[str, _Node] = {}
        self.alias: Dict[str, List[str]] = {}  # step name -> the node names it stands for

    def sources(self, names):
        out = []
        for n in names:
            out += self.alias.get(n, [n])
        return out

    def add(self, name, kind, sources, in_shape, out_shape, **fields):
        name = name.replace(".", "_")
        while name in self.nodes:
            name += "_"
        self.nodes[name] = _Node(name, kind, sources, in_shape, out_shape, **fields)
        return name

    # ---- per-frame modules (inside Tosnn) and modules on N x T x F ---------------------
    def frame(self, name, m, src, shape, where):
        """Map per-frame module ``m`` reading ``src`` of per-sample ``shape``; returns the
        new source list and the output shape."""
        with torch.no_grad():
            out_shape = tuple(m.eval()(torch.zeros(1, *shape)).shape[1:])
        if isinstance(m, (nn.Identity, nn.Dropout)):
            return src, out_shape
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise NIRExportError(f"{where}: only zero padding given in numbers maps to NIR")
            bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
            return [self.add(name, "conv", src, shape, out_shape, weight=_np(m.weight),
                             bias=_np(bias), stride=_pair(m.stride), padding=_pair(m.padding),
                             dilation=_pair(m.dilation), groups=m.groups)], out_shape  # fmt: skip
        if isinstance(m, nn.Linear):
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
            node = self.add(name, "affine", src, shape, out_shape, weight=_np(m.weight),
                            bias=_np(bias))  # fmt: skip
            return [node], out_shape
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.fold_norm(m, src, where)
            return src, out_shape
        if isinstance(m, nn.AvgPool2d):
            if _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
                raise NIRExportError(f"{where}: AvgPool2d with padding, ceil_mode or a divisor")
            k = _pair(m.kernel_size)
            s = _pair(m.stride if m.stride is not None else m.kernel_size)
            return [self.add(name, "avgpool", src, shape, out_shape, kernel_size=k, stride=s)], (
                out_shape
            )
        if isinstance(m, nn.AdaptiveAvgPool2d):
            (h, w), (oh, ow) = shape[-2:], out_shape[-2:]
            if h % oh or w % ow:
                raise NIRExportError(
                    f"{where}: AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} is not a fixed pool"
                )
            k = (h // oh, w // ow)
            return [self.add(name, "avgpool", src, shape, out_shape, kernel_size=k, stride=k)], (
                out_shape
            )
        if isinstance(m, nn.Flatten):
            start, end = m.start_dim % (len(shape) + 1), m.end_dim % (len(shape) + 1)
            if start < 1:
                raise NIRExportError(f"{where}: Flatten(start_dim=0) merges the batch axis")
            node = self.add(name, "flatten", src, shape, out_shape, start_dim=start - 1,
                            end_dim=end - 1)  # fmt: skip
            return [node], out_shape
        raise NIRExportError(
            f"{where} ({type(m).__name__}) has no NIR equivalent (NIR has convolutions, affine "
            "maps, average/sum pooling, flatten and LIF/IF/CubaLIF neurons)"
        )

    def fold_norm(self, bn, src, where):
        """Fold an eval-mode BatchNorm into the conv or affine node that feeds it."""
        if len(src) != 1 or src[0] not in self.nodes or self.nodes[src[0]].kind not in _WEIGHTED:
            raise NIRExportError(
                f"{where}: a BatchNorm folds into the convolution or linear layer right "
                "before it, and there is none (NIR has no BatchNorm node)"
            )
        node = self.nodes[src[0]]
        if bn.running_var is None:
            raise NIRExportError(f"{where}: a BatchNorm without running statistics")
        var, mean = bn.running_var.double(), bn.running_mean.double()
        scale = 1.0 / torch.sqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().double()
        shift = -mean * scale + (bn.bias.detach().double() if bn.bias is not None else 0.0)
        w = torch.from_numpy(node.fields["weight"]).double()
        b = torch.from_numpy(node.fields["bias"]).double()
        shape = (-1,) + (1,) * (w.dim() - 1)
        node.fields["weight"] = _np(w * scale.reshape(shape))
        node.fields["bias"] = _np(b * scale + shift)

    # ---- one recorded step ------------------------------------------------------------
    def step(self, s):
        where = f"module {s.name}" if s.module is not None else f"operation {s.name}"
        src = self.sources(s.inputs)
        if s.op == "add":
            self.alias[s.name] = src
            return
        if s.op == "flatten":
            node = self.add(s.name, "flatten", src, s.in_shape, s.out_shape, **s.args)
            self.alias[s.name] = [node]
            return
        m = s.module
        if isinstance(m, Recurrent):
            self.alias[s.name] = [self.recurrent(s.name, m, src, s.in_shape, where)]
            return
        if isinstance(m, SpikingNeuron):
            self.alias[s.name] = [self.neuron(s.name, m, src, s.in_shape, where)]
            return
        if isinstance(m, Tosnn):
            shape = s.in_shape
            for i, inner in enumerate(_frame_modules(m.module)):
                src, shape = self.frame(f"{s.name}.{i}", inner, src, shape, f"{where} [{i}]")
            self.alias[s.name] = src
            return
        if isinstance(m, nn.Flatten):
            start, end = m.start_dim % (len(s.in_shape) + 2), m.end_dim % (len(s.in_shape) + 2)
            if start < 2:
                raise NIRExportError(f"{where}: Flatten(start_dim={m.start_dim}) merges N x T")
            node = self.add(s.name, "flatten", src, s.in_shape, s.out_shape,
                            start_dim=start - 2, end_dim=end - 2)  # fmt: skip
            self.alias[s.name] = [node]
            return
        # Linear, BatchNorm1d, Identity, Dropout on N x T x F: per sample they are the same
        if isinstance(m, (nn.Linear, nn.Identity, nn.Dropout, nn.BatchNorm1d)):
            self.alias[s.name], _ = self.frame(s.name, m, src, s.in_shape, where)
            return
        raise NIRExportError(f"{where} ({type(m).__name__}) has no NIR equivalent")

    def recurrent(self, name, m, src, shape, where):
        """A nested graph input -> neuron <-> w_rec -> output, as snnTorch writes its
        recurrent layers (Norse and snnTorch read it); a LIF's r is folded into W_rec and
        the weights that feed the layer (fold_r)."""
        inner = self.nodes.pop(self.neuron(name + ".neuron", m.neuron, [], shape, where))
        if inner.kind == "if":
            raise NIRExportError(f"{where}: Recurrent(IF) has no NIR graph (LIF and CubaLIF do)")
        weight = _np(m.weight)
        bias = None if m.bias is None else _np(m.bias)
        extra = {"r": inner.fields["r"]} if inner.kind == "lif" else {}  # folded by fold_r
        return self.add(name, "recurrent", src, shape, shape, neuron=inner, weight=weight,
                        bias=bias, **extra)  # fmt: skip

    def neuron(self, name, m, src, shape, where):
        """The neuron's own NIR node (its ``to_nir``), with the soft-reset policy."""
        metadata = {}
        if m.v_reset is None:
            if self.soft_reset != "metadata":
                raise NIRExportError(
                    f"{where}: reset by subtraction (v_reset=None) has no NIR node: NIR's "
                    "neurons reset to v_reset. Train with a hard reset, or pass "
                    "soft_reset='metadata' (snetx.nir.load honours it; other importers "
                    "reset to 0)"
                )
            metadata = {"snetx_reset": "subtract"}
        try:
            kind, fields = m.to_nir(self.dt, shape)
        except ValueError as e:
            raise NIRExportError(f"{where}: {e}") from None
        return self.add(name, _KINDS[kind], src, shape, shape, **fields, metadata=metadata)

    # ---- passes over the whole graph --------------------------------------------------
    def consumers(self, name):
        return [n for n in self.nodes.values() if name in n.sources]

    def fold_r(self):
        """Move each LIF's r into the weights of the nodes feeding it, where those feed
        nothing else: r = 1 then, which every importer runs the same (Norse ignores r)."""
        for node in list(self.nodes.values()):
            if node.kind != "lif" and not (node.kind == "recurrent" and "r" in node.fields):
                continue
            r = node.fields["r"]
            feeders = [self.nodes.get(s) for s in node.sources]  # None: the graph input
            foldable = all(
                f is not None
                and f.kind in _WEIGHTED
                and [c.name for c in self.consumers(f.name)] == [node.name]
                for f in feeders
            )
            per_channel = r.reshape(r.shape[0], -1)
            if not foldable or not np.all(per_channel == per_channel[:, :1]):
                warnings.warn(
                    f"snetx.nir.export: {node.name} keeps r != 1 (its input does not come "
                    "only from weights it alone reads); NIR importers that ignore r "
                    "(Norse) will run it differently",
                    stacklevel=3,
                )
                continue
            scale = per_channel[:, 0]
            for f in feeders:
                w = f.fields["weight"].astype(np.float64)
                f.fields["weight"] = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(
                    np.float32
                )
                f.fields["bias"] = (f.fields["bias"].astype(np.float64) * scale).astype(np.float32)
            if node.kind == "recurrent":  # the recurrent input is scaled alike
                f = node.fields
                f["weight"] = (f["weight"].astype(np.float64) * scale[:, None]).astype(np.float32)
                if f["bias"] is not None:
                    f["bias"] = (f["bias"].astype(np.float64) * scale).astype(np.float32)
                f["neuron"].fields["r"] = np.ones_like(r)
                del f["r"]
                continue
            node.fields["r"] = np.ones_like(r)

    def _weighted_after(self, node):
        """The conv/affine nodes that read ``node`` alone, through Flatten nodes; None if
        some path reaches anything else."""
        out = []
        for c in self.consumers(node.name):
            if c.sources != [node.name]:
                return None
            if c.kind == "flatten":
                more = self._weighted_after(c)
                if more is None:
                    return None
                out += more
            elif c.kind in _WEIGHTED:
                out.append(c)
            else:
                return None
        return out or None

    def sum_pools(self):
        """Average pools as NIR SumPool2d with 1/(kh kw) folded into the weights after
        (through a Flatten: it only reshapes)."""
        for node in list(self.nodes.values()):
            if node.kind != "avgpool":
                continue
            area = float(np.prod(node.fields["kernel_size"]))
            after = self._weighted_after(node)
            if after is None:
                raise NIRExportError(
                    f"{node.name}: pool='sum' folds 1/{area:g} into the convolution or linear "
                    "layers that read the pool alone, and there are none"
                )
            for c in after:
                c.fields["weight"] = (c.fields["weight"].astype(np.float64) / area).astype(
                    np.float32
                )
            node.kind = "sumpool"

    def nir_node(self, node):
        f = node.fields
        if node.kind == "conv":
            return nir.Conv2d(
                input_shape=tuple(node.in_shape[-2:]), weight=f["weight"], stride=f["stride"],
                padding=f["padding"], dilation=f["dilation"], groups=f["groups"],
                bias=f["bias"],
            )  # fmt: skip
        if node.kind == "affine":
            return nir.Affine(weight=f["weight"], bias=f["bias"])
        if node.kind in ("avgpool", "sumpool"):
            cls = nir.AvgPool2d if node.kind == "avgpool" else nir.SumPool2d
            return cls(
                kernel_size=np.array(f["kernel_size"]),
                stride=np.array(f["stride"]),
                padding=np.array([0, 0]),
            )
        if node.kind == "flatten":
            end = f["end_dim"]
            # the last axis as -1, as NIR's own examples write it: Norse's importer shifts a
            # positive end_dim past the batch axis it adds, and flattens the wrong axes
            if end == len(node.in_shape) - 1:
                end = -1
            return nir.Flatten(
                input_type={"input": np.array(node.in_shape)},
                start_dim=f["start_dim"],
                end_dim=end,
            )
        if node.kind == "recurrent":
            n = f["neuron"]
            w_rec = (nir.Linear(weight=f["weight"]) if f["bias"] is None
                     else nir.Affine(weight=f["weight"], bias=f["bias"]))  # fmt: skip
            size = np.array([int(np.prod(node.in_shape))])
            return nir.NIRGraph(
                nodes={"input": nir.Input(input_type={"input": size}),
                       "lif": self.nir_node(n), "w_rec": w_rec,
                       "output": nir.Output(output_type={"output": size})},
                edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
            )  # fmt: skip
        fields = {k: v for k, v in f.items() if k != "metadata"}
        return _NODES[node.kind](**fields, metadata=dict(f["metadata"]))


def export(model, sample_input, dt=1e-4, pool="avg", soft_reset="error"):
    r"""The NIR graph of ``model`` as it runs on ``sample_input`` (``N x T x ...``).

    See the module documentation (:mod:`snetx.nir`) for the mapping. The model is traced
    in eval mode (BatchNorm folds with its running statistics) and restored afterwards.

    Args:
        model (nn.Module): a snetx model (``N x T x ...`` in and out).
        sample_input (Tensor): an input of the shape the model takes; its values do not
            matter.
        dt (float): the time step the exported time constants assume. Default ``1e-4``
            (snnTorch's importer uses ``1e-4``; give Norse's ``from_nir`` the same ``dt``).
        pool (str): ``"avg"`` exports average pools as NIR ``AvgPool2d``; ``"sum"`` as
            ``SumPool2d`` with ``1/(kh kw)`` folded into the next layer's weights (Norse
            reads only ``SumPool2d``).
        soft_reset (str): ``"error"`` (default) refuses neurons with ``v_reset=None``;
            ``"metadata"`` exports them with ``v_reset = 0`` and the node metadata
            ``{"snetx_reset": "subtract"}``, which :func:`snetx.nir.load` honours.

    Returns:
        nir.NIRGraph
    """
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
    if pool not in ("avg", "sum"):
        raise ValueError(f"pool must be 'avg' or 'sum', got {pool!r}")
    if soft_reset not in ("error", "metadata"):
        raise ValueError(f"soft_reset must be 'error' or 'metadata', got {soft_reset!r}")
    steps, output, in_shape = trace(model, sample_input)
    b = _Builder(float(dt), soft_reset)
    for s in steps:
        b.step(s)
    b.fold_r()
    if pool == "sum":
        b.sum_pools()
    out_src = b.sources([output])
    if any(s == "input" for s in out_src) or len(out_src) != 1:
        raise NIRExportError(
            "the model's output must be one layer's output (not the input or a sum)"
        )
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    edges = []
    for node in b.nodes.values():
        nodes[node.name] = b.nir_node(node)
        edges += [(src, node.name) for src in node.sources]
    out_shape = b.nodes[out_src[0]].out_shape
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    edges.append((out_src[0], "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"snetx_dt": float(dt)})
