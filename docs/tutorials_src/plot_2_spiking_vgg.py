"""
A spiking VGG
=============

:mod:`snetx.models.svggnet` builds torchvision's VGG configurations with LIF neurons. On
32x32 inputs (CIFAR) the ``compact`` head keeps VGG11 at about 9M parameters. Here a
``vgg11_bn`` learns to fit a fixed batch of random CIFAR-shaped images (the real CIFAR
files are not needed to build the docs); with ``snetx-train --dataset cifar10 --model
vgg11_bn`` it trains on CIFAR-10 itself.
"""

import functools

import matplotlib.pyplot as plt
import torch
from snetx.models import svggnet
from snetx.snn import algorithm, monitor, neuron
from torch import nn

torch.manual_seed(0)
net = svggnet.vgg11_bn(
    nn.BatchNorm2d,
    num_classes=10,
    head="compact",
    neuron=functools.partial(neuron.LIF, tau=2.0, sg="arctan", alpha=4.0),
)
print(f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters")

T = 2
x = algorithm.DirectEncoder(T)(torch.randn(16, 3, 32, 32))  # N x T x C x H x W
y = torch.randint(0, 10, (16,))
print("output shape:", tuple(net(x).shape))  # per-step logits N x T x classes

# %%
# A few steps of STBP with the TET loss, and the firing rate of every LIF layer.

opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
losses = []
for _ in range(8):
    loss = algorithm.TETLoss(nn.CrossEntropyLoss(), y, net(x))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print("loss:", " ".join(f"{v:.3f}" for v in losses))

net.eval()
with monitor.FiringRateMonitor(net) as mon, torch.no_grad():
    net(x)
rates = mon.rates()
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
a.plot(losses, marker="o")
a.set(xlabel="step", ylabel="TET loss", title="fitting one batch")
b.bar(range(len(rates)), list(rates.values()))
b.set(xlabel="LIF layer", ylabel="spikes / neuron / step", title="firing rates")
fig.tight_layout()
