"""
Writing a custom surrogate
==========================

A surrogate fires with the Heaviside step and uses a smooth derivative in the backward
pass. Subclass :class:`~snetx.snn.surrogate.SurrogateFunction` and define only
``derivative(z, alpha)``: the forward, the backward and the fused LIF paths are derived
from it.
"""

import matplotlib.pyplot as plt
import torch
from snetx.snn import neuron, surrogate


class Gaussian(surrogate.SurrogateFunction):
    @staticmethod
    def derivative(z, alpha):
        return alpha / (torch.pi**0.5) * torch.exp(-((alpha * z) ** 2))


# %%
# Its derivative beside the built-in ones, at their default sharpness.

z = torch.linspace(-1.5, 1.5, 301)
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in surrogate.REGISTERED_SG_FUNCLIST:
    ax.plot(z, surrogate.get(name).derivative(z, 4.0), label=name)
ax.plot(z, Gaussian.derivative(z, 4.0), "k--", label="Gaussian (custom)")
ax.set(xlabel="z = h - v_th", ylabel="surrogate derivative", title="alpha = 4")
ax.legend(fontsize=7)
fig.tight_layout()

# %%
# The gradient through a LIF with the custom surrogate equals the plain autograd loop of
# the neuron's equations.

torch.manual_seed(0)
x = torch.rand(4, 6, 10, dtype=torch.float64, requires_grad=True)
neuron.LIF(sg=Gaussian, alpha=2.0)(x).sum().backward()
fused = x.grad.clone()

x.grad = None
u, out = torch.zeros_like(x[:, 0]), []
for t in range(x.shape[1]):
    h = u / 2.0 + x[:, t]
    s = Gaussian.apply(h - 1.0, 2.0)
    u = h * (1 - s)
    out.append(s)
torch.stack(out, 1).sum().backward()
print("largest difference:", (fused - x.grad).abs().max().item())
