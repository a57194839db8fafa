"""
Quick start: a spiking CNN on digits
====================================

Train a small spiking network on scikit-learn's bundled handwritten digits (8x8 images,
offline) with STBP: a direct encoder repeats each image over ``T`` time steps, per-frame
convolutions run through :class:`~snetx.snn.algorithm.Tosnn`, LIF neurons fire, and the
TET loss trains the per-step outputs.
"""

import matplotlib.pyplot as plt
import torch
from snetx.dataset import vision
from snetx.snn import algorithm, neuron
from torch import nn

torch.manual_seed(0)
T = 4
train, test = vision.digits_dataset(None, 64, 256, num_workers=0, seed=0)

net = nn.Sequential(
    algorithm.DirectEncoder(T),  # N x 1 x 8 x 8 -> N x T x 1 x 8 x 8
    algorithm.Tosnn(nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16))),
    neuron.LIF(tau=2.0),
    algorithm.Tosnn(nn.Flatten()),
    algorithm.Tosnn(nn.Linear(16 * 8 * 8, 10)),  # per-step logits N x T x 10
)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
ce = nn.CrossEntropyLoss()

# %%
# Train for three epochs; predict by averaging the outputs over time.


def accuracy():
    net.eval()
    with torch.no_grad():
        hits = sum(int((net(x).mean(1).argmax(1) == y).sum()) for x, y in test)
    net.train()
    return hits / len(test.dataset)


history = []
for epoch in range(3):
    for x, y in train:
        loss = algorithm.TETLoss(ce, y, net(x), lamb=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    history.append(accuracy())
    print(f"epoch {epoch + 1}: test accuracy {history[-1]:.2%}")

# %%
# The neurons' spikes for one test image: each row is a time step.

x, _ = next(iter(test))
with torch.no_grad():
    spikes = net[:3](x[:1])  # encoder, conv, LIF: 1 x T x 16 x 8 x 8
fig, ax = plt.subplots(figsize=(6, 2))
ax.imshow(spikes[0].flatten(1).numpy(), aspect="auto", cmap="binary", interpolation="nearest")
ax.set(xlabel="neuron", ylabel="time step", title="spikes of the first LIF layer")
fig.tight_layout()
