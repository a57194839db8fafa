"""
A recurrent ALIF network on spike trains
========================================

Audio-like spike trains (the Spiking Heidelberg Digits: 700 cochlea channels) are
classified by recurrent networks of adaptive neurons (Yin et al., 2021). Here a small
SHD-format file is written with ``h5py`` (SHD's own layout: ``spikes/times``,
``spikes/units``, ``labels``), loaded with :func:`~snetx.dataset.neuromorphic.shd_dataset`
and learned by two :class:`~snetx.snn.layer.Recurrent` layers of
:class:`~snetx.snn.neuron.ALIF` neurons, the model ``snetx-train --model srnn --neuron alif``
builds.

Each class is a rising or falling sweep over a band of channels, so telling them apart
needs the order of the spikes in time, which the recurrence and the adaptive thresholds
keep.
"""

import tempfile
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import torch
from snetx.dataset import neuromorphic
from snetx.models.smlp import SpikingMLP
from snetx.snn import neuron


def ragged(arrays):
    out = np.empty(len(arrays), dtype=object)  # one array per sample, of its own length
    out[:] = arrays
    return out


def write_shd(path, samples):
    """samples: (label, times in s, units) per sample, written as SHD stores them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=ragged([t for _, t, _ in samples]),
                         dtype=h5py.vlen_dtype(np.float16))  # fmt: skip
        f.create_dataset("spikes/units", data=ragged([u for _, _, u in samples]),
                         dtype=h5py.vlen_dtype(np.uint16))  # fmt: skip
        f.create_dataset("labels", data=np.array([c for c, _, _ in samples], dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"up", b"down"] * 2))
        f.create_dataset("extra/speaker", data=np.zeros(len(samples), dtype=np.uint16))


def sweep(rng, label):
    """A sweep through 40 channels of one band: up (even labels) or down (odd labels)."""
    band = 100 + 150 * (label // 2)
    t = np.sort(rng.uniform(0.05, 0.85, 300))
    pos = (t - 0.05) / 0.8 * 40
    units = band + (pos if label % 2 == 0 else 40 - pos).astype(int) + rng.integers(-2, 3, 300)
    return label, t.astype(np.float16), units.clip(0, 699).astype(np.uint16)


rng = np.random.default_rng(0)
root = Path(tempfile.mkdtemp())
for split, n in (("train", 96), ("test", 32)):
    write_shd(root / "SHD" / f"shd_{split}.h5", [sweep(rng, i % 4) for i in range(n)])

T = 25  # 40 ms bins over the first second
train, test = neuromorphic.shd_dataset(root, T, 16, 32, download=False, num_workers=0)

# %%
# Two recurrent layers of ALIF neurons: each spike raises a neuron's threshold by
# ``beta``, and the raise decays with ``tau_adapt``.

torch.manual_seed(0)
net = SpikingMLP(700, 4, hidden=(64, 64), recurrent=True,
                 neuron=lambda: neuron.ALIF(tau=2.0, tau_adapt=20.0, beta=0.2, v_reset=None))
print(net.rec[0])
with torch.no_grad():  # sparse input (a few spikes per bin): start with stronger synapses
    for fc in net.fc:
        fc.weight.mul_(4)
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
history = []
for _epoch in range(12):
    net.train()
    for x, y in train:
        loss = torch.nn.functional.cross_entropy(net(x).mean(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        right = sum((net(x).mean(1).argmax(1) == y).sum().item() for x, y in test)
    history.append(right / len(test.dataset))
print("test accuracy per epoch:", [round(a, 3) for a in history])

# %%
# The hidden spikes of one test sample: the first layer follows the sweep; the adaptive
# thresholds space out each neuron's spikes.

x, y = next(iter(test))
with torch.no_grad():
    hidden = net.rec[0](net.fc[0](x[:1]))[0]
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].imshow(x[0].T, aspect="auto", origin="lower", cmap="Greys")
axes[0].set(title=f"input (class {y[0].item()})", xlabel="t", ylabel="channel")
axes[1].imshow(hidden.T, aspect="auto", origin="lower", cmap="Greys")
axes[1].set(title="first recurrent ALIF layer", xlabel="t", ylabel="neuron")
fig.tight_layout()
