r"""Spike monitoring: per-layer firing rates through forward hooks, and a raster plot.

The hooks only read the neurons' outputs; they change no result.

Example::

    >>> import torch
    >>> from torch import nn
    >>> from snetx.snn import monitor, neuron
    >>> net = nn.Sequential(nn.Linear(4, 8), neuron.LIF(), nn.Linear(8, 2), neuron.LIF())
    >>> with monitor.FiringRateMonitor(net) as mon:
    ...     _ = net(torch.rand(3, 5, 4) * 4)
    >>> sorted(mon.rates())
    ['1', '3']
"""

import torch
from torch import nn

__all__ = ["FiringRateMonitor", "HookSet", "is_neuron", "raster_plot"]


def is_neuron(module: nn.Module) -> bool:
    """A spiking neuron of snetx (any :class:`~snetx.snn.neuron.SpikingNeuron`, whatever its
    backend), or anything marked ``is_spiking_neuron = True``."""
    from .neuron import SpikingNeuron

    return isinstance(module, SpikingNeuron) or bool(getattr(module, "is_spiking_neuron", False))


class HookSet:
    """Forward hooks registered on a model, removed by :meth:`remove` or at the end of a
    ``with`` block (the base of the monitors here and in :mod:`snetx.snn.energy`)."""

    def __init__(self):
        self._handles = []

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class FiringRateMonitor(HookSet):
    """Counts spikes of every neuron module in ``model`` (by its qualified name).

    ``rates()`` gives spikes / (neurons x steps x samples) per layer since the last
    ``reset()``; ``remove()`` (or leaving the ``with`` block) detaches the hooks.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.spikes, self.counts = {}, {}
        for name, module in model.named_modules():
            if is_neuron(module):
                self._handles.append(module.register_forward_hook(self._hook(name or "neuron")))

    def _hook(self, name):
        def hook(module, inputs, output):
            with torch.no_grad():
                self.spikes[name] = self.spikes.get(name, 0.0) + float(
                    output.detach().float().sum()
                )
                self.counts[name] = self.counts.get(name, 0) + output.numel()

        return hook

    def rates(self):
        return {k: self.spikes[k] / self.counts[k] for k in self.spikes if self.counts[k]}

    def reset(self):
        self.spikes.clear()
        self.counts.clear()


def raster_plot(spikes, ax=None, max_neurons=200, title=None):
    """Dot raster of a ``T x neurons`` (or ``T x ...``, flattened) spike tensor of one
    sample. Returns the matplotlib Axes. Needs matplotlib (the extra ``[plot]``)."""
    try:
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:
        from snetx import install_hint

        hint = install_hint("snetx-core", "plot")
        raise ImportError(f"raster_plot needs matplotlib: {hint}") from e
    s = torch.as_tensor(spikes).detach().float().cpu()
    if s.dim() < 2:
        raise ValueError(f"raster_plot expects T x neurons, got shape {tuple(s.shape)}")
    s = s.flatten(1)[:, :max_neurons]
    t, n = s.nonzero(as_tuple=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.scatter(t.numpy(), n.numpy(), s=4, marker="|", color="black")
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    ax.set_xlim(-0.5, s.shape[0] - 0.5)
    if title:
        ax.set_title(title)
    return ax
