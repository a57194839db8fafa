r"""Synaptic operations and an energy estimate, counted during forward passes.

:class:`SynapticOpsCounter` hooks every ``nn.Conv1d/2d/3d``, ``nn.Linear`` and
``nn.AvgPool1d/2d/3d`` of a model (also inside :class:`~snetx.snn.algorithm.Tosnn`) and
counts, per layer:

- its dense multiply-accumulates :math:`M` (conv: output elements x ``in_channels/groups``
  x kernel size; linear: output elements x ``in_features``; average pool: output elements
  x window size, additions without weights);
- whether its input was binary (every value 0 or 1: spikes) and, if so, the input firing
  rate :math:`r` (the fraction of ones).

A layer fed by spikes performs accumulates only where a spike arrives:
:math:`\mathrm{AC} = M \cdot r`. A layer fed by real values (the encoding layer, whose
input is the image) performs :math:`\mathrm{MAC} = M`. Max pools and neurons count nothing.

Spiking attention runs through two counted operations, :class:`MatMul` and :class:`Sum`
(the spiking transformers of snetx.models use them):

- ``MatMul()(a, b)`` (Spikformer's and QKFormer's :math:`Q K^\top V`): dense
  :math:`M` = output elements x the inner size; with a spike operand it is
  :math:`\mathrm{AC} = M \cdot r` (``r`` the rate of the first spike operand: each spike
  adds a row of the other), with two real operands :math:`\mathrm{MAC} = M`;
- ``Sum(dim)(x)`` (the Spike-driven Transformer's column sum of :math:`K \otimes V`,
  QKFormer's sum of Q over a head's channels): one accumulate per spike summed,
  :math:`\mathrm{AC} = \text{nnz}(x)`, as :math:`M \cdot r` with :math:`M` the elements
  summed.

Element-wise products of spikes (the Hadamard masks of SDSA and QKTA) are masks, not
arithmetic: they count nothing. This is the Spike-driven Transformer paper's estimate
(Yao et al., NeurIPS 2023, Sec. 4 and its appendix, following Spikformer):
:math:`E = E_{MAC} \cdot FL_{conv}^{1} + E_{AC} \cdot \sum_{\text{layers}} T\, r\,
FL`, each layer's FLOPs times its input's firing rate, the first layer (real input) as
MACs; counts here are summed over the T steps a sample runs, so the :math:`T` factor is
already in them.
The energy estimate is :math:`E = \mathrm{AC} \cdot e_{AC} + \mathrm{MAC} \cdot e_{MAC}`
with the 45 nm CMOS figures the SNN literature uses (Horowitz, ISSCC 2014): 0.9 pJ per
32-bit float add (AC) and 4.6 pJ per multiply-add (MAC); both are parameters. Counts are
per sample, summed over the time steps: every operation of every call is added up and the
total divided by the number of samples that entered the model (the first dim of its
input).

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx.snn import energy
    >>> layer = nn.Linear(4, 3)
    >>> with energy.SynapticOpsCounter(layer) as counter:
    ...     _ = layer(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))   # 2 of 4 inputs spike
    >>> report = counter.report()
    >>> report["layers"][""]["ac"], report["totals"]["ac"], report["totals"]["mac"]
    (6.0, 6.0, 0.0)
"""

import math

import torch
from torch import nn

from . import memory
from .monitor import HookSet

__all__ = ["SynapticOpsCounter", "MatMul", "Sum", "E_AC_PJ", "E_MAC_PJ"]

#: energy per accumulate and per multiply-accumulate, picojoules (45 nm, 32-bit float)
E_AC_PJ = 0.9
E_MAC_PJ = 4.6

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


class MatMul(nn.Module):
    """``a @ b`` as a module, so that :class:`SynapticOpsCounter` counts it (spike
    operands: accumulates)."""

    def forward(self, a, b):
        return memory.spike_matmul(a, b)  # spike operands kept as bits for backward


class Sum(nn.Module):
    """``x.sum(dim, keepdim=True)`` as a module, so that :class:`SynapticOpsCounter`
    counts its additions (one per spike summed)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x.sum(self.dim, keepdim=True)

    def extra_repr(self):
        return f"dim={self.dim}"


def _binary(x):
    return bool(((x == 0) | (x == 1)).all())


def _dense_ops(module, output):
    """Multiply-accumulates of one call, dense (every input counted)."""
    out = output.numel()
    if isinstance(module, _CONV):
        return out * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return out * module.in_features
    kernel = module.kernel_size
    kernel = (kernel,) * (output.dim() - 2) if isinstance(kernel, int) else kernel
    return out * math.prod(kernel)


class SynapticOpsCounter(HookSet):
    """Counts synaptic operations of ``model``'s layers while it runs (see the module doc).

    Args:
        model: the network; every conv, linear and average-pool layer is hooked, and the
            model itself counts the samples that enter it.
        e_ac, e_mac: energy per AC and per MAC in picojoules (defaults 0.9 and 4.6).
    """

    def __init__(self, model: nn.Module, e_ac=E_AC_PJ, e_mac=E_MAC_PJ):
        for name, v in (("e_ac", e_ac), ("e_mac", e_mac)):
            if isinstance(v, bool) or not (
                isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0 (pJ), got {v!r}")
        super().__init__()
        self.e_ac, self.e_mac = float(e_ac), float(e_mac)
        self.layers, self.samples = {}, 0
        self._handles.append(model.register_forward_pre_hook(self._count_samples))
        for name, module in model.named_modules():
            if isinstance(module, (*_CONV, nn.Linear, *_POOL)):
                self._handles.append(module.register_forward_hook(self._hook(name)))
            elif isinstance(module, (MatMul, Sum)):
                self._handles.append(module.register_forward_hook(self._op_hook(name)))

    def _count_samples(self, module, inputs):
        x = inputs[0] if inputs else None
        if isinstance(x, torch.Tensor):
            self.samples += x.shape[0] if x.dim() > 0 else 1

    def _hook(self, name):
        def hook(module, inputs, output):
            with torch.no_grad():
                x = inputs[0]
                dense = float(_dense_ops(module, output))
                binary = bool(((x == 0) | (x == 1)).all())
                ones = int(x.count_nonzero())
                entry = self._entry(name, module)
                entry["ones"] += ones
                entry["inputs"] += x.numel()
                if binary:
                    entry["ac"] += dense * ones / max(x.numel(), 1)
                else:
                    entry["mac"] += dense
                    entry["spike_input"] = False

        return hook

    def _entry(self, name, module):
        return self.layers.setdefault(
            name,
            {"type": type(module).__name__, "ac": 0.0, "mac": 0.0,
             "spike_input": True, "ones": 0, "inputs": 0},
        )  # fmt: skip

    def _op_hook(self, name):
        """MatMul: AC = M r of its spike operand (MAC with two real ones); Sum: AC = the
        spikes summed."""

        def hook(module, inputs, output):
            with torch.no_grad():
                entry = self._entry(name, module)
                if isinstance(module, Sum):
                    x = inputs[0]
                    ones = int(x.count_nonzero())
                    entry["ones"] += ones
                    entry["inputs"] += x.numel()
                    if _binary(x):
                        entry["ac"] += float(ones)
                    else:
                        entry["mac"] += float(x.numel())
                        entry["spike_input"] = False
                    return
                a, b = inputs
                dense = float(output.numel() * a.shape[-1])
                spikes = next((t for t in (a, b) if _binary(t)), None)
                ones = int((a if spikes is None else spikes).count_nonzero())
                entry["ones"] += ones
                entry["inputs"] += (a if spikes is None else spikes).numel()
                if spikes is None:  # two real operands: multiply-accumulates
                    entry["mac"] += dense
                    entry["spike_input"] = False
                else:
                    entry["ac"] += dense * ones / max(spikes.numel(), 1)

        return hook

    def reset(self):
        self.layers.clear()
        self.samples = 0

    def report(self):
        """Per-layer and total AC and MAC per sample, and the energy estimate per sample in
        picojoules (and millijoules)."""
        n = max(self.samples, 1)
        layers = {}
        for name, e in self.layers.items():
            ac, mac = e["ac"] / n, e["mac"] / n
            layers[name] = {
                "type": e["type"],
                "spike_input": e["spike_input"],
                "input_rate": e["ones"] / max(e["inputs"], 1),
                "ac": ac,
                "mac": mac,
                "energy_pj": ac * self.e_ac + mac * self.e_mac,
            }
        ac = sum(v["ac"] for v in layers.values())
        mac = sum(v["mac"] for v in layers.values())
        energy = ac * self.e_ac + mac * self.e_mac
        return {
            "samples": self.samples,
            "layers": layers,
            "totals": {"ac": ac, "mac": mac, "energy_pj": energy, "energy_mj": energy * 1e-9},
            "per_op_pj": {"ac": self.e_ac, "mac": self.e_mac},
        }

    def table(self):
        """The report as a Markdown table (per sample)."""
        r = self.report()
        lines = [
            "| layer | type | input | rate | AC | MAC | energy (pJ) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, v in r["layers"].items():
            kind = "spikes" if v["spike_input"] else "real"
            lines.append(
                f"| {name or '(model)'} | {v['type']} | {kind} | {v['input_rate']:.3f} | "
                f"{v['ac']:.4g} | {v['mac']:.4g} | {v['energy_pj']:.4g} |"
            )
        t = r["totals"]
        lines.append(f"| total | | | | {t['ac']:.4g} | {t['mac']:.4g} | {t['energy_pj']:.4g} |")
        return "\n".join(lines)
