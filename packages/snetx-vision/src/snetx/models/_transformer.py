r"""Parts the spiking transformers share: per-frame convolutions with BatchNorm, token
layers, and the three spiking attentions as plain functions of their spike operands.

Layouts: images and feature maps are ``N x T x C x H x W``; tokens are ``N x T x C x L``
(``L = H W``); heads split ``C`` into ``h`` heads of ``d = C / h`` channels. Per-frame
modules run through :class:`~snetx.snn.algorithm.Tosnn` (BatchNorm statistics over
``N T`` and the tokens, as the released code's ``flatten(0, 1)`` takes them). Every
neuron comes from the model's ``neuron`` factory; attention neurons are built with
``neuron(v_th=0.5)``, the released threshold there.
"""

import torch
from snetx.snn.algorithm import Tosnn
from torch import nn


def conv_bn(cin, cout, kernel=3, stride=1, bias=False, pool=False):
    """``Tosnn(Conv2d -> BatchNorm2d [-> MaxPool2d(3, 2, 1)])`` on ``N x T x C x H x W``."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias), nn.BatchNorm2d(cout)]
    if pool:
        layers.append(nn.MaxPool2d(3, 2, 1))
    return Tosnn(nn.Sequential(*layers))


def maxpool():
    return Tosnn(nn.MaxPool2d(3, 2, 1))


def token_bn(cin, cout, bias):
    """A per-token linear map and BatchNorm1d on ``N x T x C x L`` (the released code's
    ``Conv1d(k=1)`` or ``Linear`` + ``BatchNorm1d``: the same map)."""
    return Tosnn(nn.Sequential(nn.Conv1d(cin, cout, 1, bias=bias), nn.BatchNorm1d(cout)))


def pixel_bn(cin, cout, bias):
    """A per-pixel linear map and BatchNorm2d on ``N x T x C x H x W`` (``Conv2d(k=1)``)."""
    return Tosnn(nn.Sequential(nn.Conv2d(cin, cout, 1, bias=bias), nn.BatchNorm2d(cout)))


def heads(x, h):
    """``N x T x C x L`` -> ``N x T x h x L x d``."""
    n, t, c, length = x.shape
    return x.reshape(n, t, h, c // h, length).transpose(-1, -2)


def merge_heads(x):
    """``N x T x h x L x d`` -> ``N x T x C x L``."""
    n, t, h, length, d = x.shape
    return x.transpose(-1, -2).reshape(n, t, h * d, length)


# ---- the attentions, on spike operands (tested against their equations) ---------------


def spiking_self_attention(q, k, v, scale, matmul=torch.matmul):
    r"""Spikformer's SSA: :math:`Q K^\top V \cdot s` per head, no softmax (``N x T x h x
    L x d`` each). With spike operands every product is an integer count, so the order
    of the two matrix products does not change the result; the cheaper one is taken.
    ``matmul`` is :class:`snetx.snn.energy.MatMul` in the models (counted)."""
    if q.shape[-2] > q.shape[-1]:  # L > d: Q (K^T V) costs L d^2 instead of L^2 d
        return matmul(q, matmul(k.transpose(-2, -1), v)) * scale
    return matmul(matmul(q, k.transpose(-2, -1)), v) * scale


def _sum(dim):
    return lambda x: x.sum(dim, keepdim=True)


_TOKEN_SUM, _CHANNEL_SUM = _sum(-2), _sum(-1)


def spike_driven_attention(q, k, v, mask_neuron, column_sum=_TOKEN_SUM):
    r"""The Spike-driven Transformer's SDSA: :math:`Q \otimes \mathcal{SN}(\sum_{tokens}
    K \otimes V)`: a Hadamard product of K and V, summed over the tokens per channel, fires
    a binary channel mask that selects Q's channels (``N x T x h x L x d``).
    ``column_sum`` is :class:`snetx.snn.energy.Sum` over the tokens in the models."""
    kv = column_sum(k * v)  # N x T x h x 1 x d: a column count per channel
    return q * mask_neuron(kv)


def token_qk_attention(q, k, mask_neuron, row_sum=_CHANNEL_SUM):
    r"""QKFormer's Q-K token attention: each token's Q spikes summed over a head's channels
    fire a binary token mask that selects K's tokens: :math:`\mathcal{SN}(\sum_{d} Q)
    \otimes K` (``N x T x h x L x d``). ``row_sum``: :class:`snetx.snn.energy.Sum`."""
    return mask_neuron(row_sum(q)) * k


class Readout(nn.Module):
    """The class scores at every time step: tokens (or pixels) averaged, optionally
    through a neuron first (SDT's head LIF), then a linear layer: ``N x T x classes``."""

    def __init__(self, dim, num_classes, neuron=None):
        super().__init__()
        self.lif = neuron
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = x.flatten(3).mean(3)  # N x T x C
        if self.lif is not None:
            x = self.lif(x)
        return self.head(x)


def check_input(name, x, multiple):
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} expects N x T x C x H x W, got {shape}")
    if x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(
            f"{name} needs H and W divisible by {multiple}, got {x.shape[-2]}x{x.shape[-1]}"
        )
