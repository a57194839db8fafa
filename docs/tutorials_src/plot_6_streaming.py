"""
Streaming inference and state
=============================

A trained spiking network can run on a stream, one time step at a time: neurons built
with ``stateful=True`` carry their membrane state from one call to the next, and
:func:`~snetx.snn.functional.reset_net` returns them to rest between samples. The result
equals the multi-step call on the whole sequence.
"""

import matplotlib.pyplot as plt
import torch
from snetx.dataset import vision
from snetx.snn import algorithm, functional, neuron
from torch import nn

torch.manual_seed(0)
T = 6
train, test = vision.digits_dataset(None, 64, 256, num_workers=0, seed=0)
net = nn.Sequential(
    algorithm.Tosnn(nn.Flatten()),
    algorithm.Tosnn(nn.Linear(64, 128)),
    neuron.PLIF(tau=2.0, stateful=True),  # a learned time constant, soft or hard reset alike
    algorithm.Tosnn(nn.Linear(128, 10)),
    neuron.LIF(v_reset=None, stateful=True),  # soft reset: spike counts as the readout
)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
encode = algorithm.DirectEncoder(T)

# %%
# Train as usual on whole sequences (reset before each batch: every sample starts at rest).

for _epoch in range(3):
    for x, y in train:
        functional.reset_net(net)
        loss = algorithm.TETLoss(nn.CrossEntropyLoss(), y, net(encode(x)) * 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
print("learned tau of the hidden layer:", round(net[2].tau_values().item(), 3))

# %%
# Stream the test set: each sample arrives one frame at a time; the spike counts so far
# give the prediction at every moment.

x, y = next(iter(test))
net.eval()
with torch.no_grad():
    functional.reset_net(net)
    whole = net(encode(x)).sum(1)  # one multi-step call
    counts, running = torch.zeros_like(whole), []
    functional.reset_net(net)
    for t in range(T):  # the stream: one step per call, state carried over
        counts += net(encode(x)[:, t : t + 1])[:, 0]
        running.append((counts.argmax(1) == y).float().mean().item())
print("stream equals the multi-step call:", torch.equal(counts, whole))
print(f"accuracy after each step: {[round(a, 3) for a in running]}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(1, T + 1), running, marker="o")
ax.set(xlabel="time steps seen", ylabel="test accuracy", title="predicting from a stream")
fig.tight_layout()
