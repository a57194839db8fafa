r"""QKFormer (Zhou et al., "QKFormer: Hierarchical Spiking Transformer using Q-K
Attention", NeurIPS 2024), following the authors' released code
(github.com/zhouchenlin2096/QKFormer: ``cifar10/model.py`` and ``imagenet/qkformer.py``).

A hierarchical spiking transformer in three stages of widths ``dim/4, dim/2, dim``, each
opened by a patch embedding with a spiking residual (``LIF(BN(conv(x)))`` chains plus a
strided 1x1 ``LIF(BN(conv))`` shortcut). The first two stages use Q-K token attention
(QKTA), linear in the number of tokens:

.. math::
    \text{QKTA}(Q, K) = \mathcal{SN}_{0.5}\Big(\sum_{d \in \text{head}} Q\Big)
    \otimes K,

each token's Q spikes summed over its head's channels fire a binary token mask that
selects K; the last stage uses Spikformer's SSA (:math:`Q K^\top V \cdot 0.125`). Blocks
are ``x + attn(x)``, then ``x + MLP(x)`` (two ``LIF(BN(1x1 conv))``); the read-out is a
linear layer on the tokens' mean, at every step.

Configurations: ``qkformer_4_384`` (CIFAR, 32x32: one block in each of the first two
stages, two SSA blocks, 8 heads; the paper's 6.74 M parameters are with CIFAR-100's 100
classes, 6.71 M with 10),
``qkformer_10_384``/``_512``/``_768`` (ImageNet 224x224: 1 + 2 + 7 blocks, 6 / 8 / 12
heads; 16.47 / 29.08 / 64.96 M). Neurons as in :mod:`snetx.models.spikformer`.

Example::

    >>> import torch
    >>> from snetx.models.qkformer import qkformer_4_384
    >>> net = qkformer_4_384(num_classes=100)
    >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)   # the paper: 6.74 M
    6.74
    >>> net(torch.rand(1, 2, 3, 32, 32)).shape
    torch.Size([1, 2, 100])
"""

import functools

from snetx.snn import energy
from torch import nn

from . import _transformer as tf
from .spikformer import MLP as _TokenMLP
from .spikformer import SSA, default_neuron

__all__ = ["QKFormer", "QKTA", "CONFIGS", "qkformer_4_384", "qkformer_10_384",
           "qkformer_10_512", "qkformer_10_768"]  # fmt: skip


class QKTA(nn.Module):
    """Q-K token attention on tokens ``N x T x dim x L`` (see the module doc)."""

    def __init__(self, dim, num_heads, neuron):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q, self.k = tf.token_bn(dim, dim, False), tf.token_bn(dim, dim, False)
        self.q_lif, self.k_lif = neuron(), neuron()
        self.mask_lif = neuron(v_th=0.5)
        self.proj = tf.token_bn(dim, dim, True)
        self.proj_lif = neuron()
        self.row_sum = energy.Sum(-1)  # counted by snetx.snn.energy

    def forward(self, x):
        q = tf.heads(self.q_lif(self.q(x)), self.num_heads)
        k = tf.heads(self.k_lif(self.k(x)), self.num_heads)
        out = tf.merge_heads(tf.token_qk_attention(q, k, self.mask_lif, self.row_sum))
        return self.proj_lif(self.proj(out))


class _Block(nn.Module):
    """``x + attn(x)``, then ``x + MLP(x)``, on maps ``N x T x C x H x W``."""

    def __init__(self, attn, dim, mlp_ratio, neuron):
        super().__init__()
        self.attn = attn
        self.mlp = _TokenMLP(dim, int(dim * mlp_ratio), neuron)

    def forward(self, x):
        size = x.shape[-2:]
        t = x.flatten(3)
        t = t + self.attn(t)
        return (t + self.mlp(t)).unflatten(3, size)


class _Embed(nn.Module):
    """A patch embedding: ``main`` (a chain of ``conv_bn``/neuron stages) plus a 1x1
    ``LIF(BN(conv))`` shortcut from the input (``first`` runs before both)."""

    def __init__(self, first, main, shortcut):
        super().__init__()
        self.first, self.main, self.shortcut = first, main, shortcut

    def forward(self, x):
        x = self.first(x)
        return self.main(x) + self.shortcut(x)


def _embed(cin, dim, style, first, neuron):
    """The released patch embeddings (``first``: the initial one, from the image)."""
    cb, n = tf.conv_bn, neuron
    if first and style == "cifar":  # no pooling: 32x32 stays
        return _Embed(nn.Sequential(cb(cin, dim // 2), n()),
                      nn.Sequential(cb(dim // 2, dim), n()),
                      nn.Sequential(cb(dim // 2, dim, 1), n()))  # fmt: skip
    if first:  # ImageNet: 224 -> 112 -> 56
        return _Embed(nn.Sequential(cb(cin, dim // 2, pool=True), n()),
                      nn.Sequential(cb(dim // 2, dim, pool=True), n(), cb(dim, dim), n()),
                      nn.Sequential(cb(dim // 2, dim, 1, 2), n()))  # fmt: skip
    if style == "cifar":  # the pool after the second conv
        main = nn.Sequential(cb(dim // 2, dim), n(), cb(dim, dim, pool=True), n())
    else:  # ImageNet: after the first
        main = nn.Sequential(cb(dim // 2, dim, pool=True), n(), cb(dim, dim), n())
    return _Embed(nn.Identity(), main, nn.Sequential(cb(dim // 2, dim, 1, 2), n()))


class QKFormer(nn.Module):
    r"""Args:
        depth (int): blocks in all (``stage_blocks`` of them in the first two stages).
        dim (int), num_heads (int), mlp_ratio (float): the last stage's width; heads; 4.
        style (str): ``"cifar"`` (stages of 1, 1 blocks, 32 -> 16 -> 8 tokens per side)
            or ``"imagenet"`` (1, 2 blocks, 224 -> 56 -> 28 -> 14).
        in_channels, num_classes: the data. neuron: as :class:`~.spikformer.Spikformer`.

    Shape:
        - Input: :math:`(N, T, C, H, W)`. Output: :math:`(N, T, \text{num\_classes})`.
    """

    def __init__(self, depth, dim, num_heads, style="cifar", mlp_ratio=4.0, in_channels=3,
                 num_classes=10, neuron=None):  # fmt: skip
        super().__init__()
        if style not in ("cifar", "imagenet"):
            raise ValueError(f"style must be 'cifar' or 'imagenet', got {style!r}")
        neuron = neuron or default_neuron
        early = (1, 1) if style == "cifar" else (1, 2)
        self.multiple = 4 if style == "cifar" else 16
        widths = (dim // 4, dim // 2, dim)
        stages = []
        for i, width in enumerate(widths):
            embed = _embed(in_channels if i == 0 else widths[i - 1], width, style, i == 0, neuron)
            count = early[i] if i < 2 else depth - sum(early)
            blocks = [
                _Block(QKTA(width, num_heads, neuron) if i < 2
                       else SSA(width, num_heads, False, 0.125, neuron), width, mlp_ratio, neuron)
                for _ in range(count)
            ]  # fmt: skip
            stages.append(nn.Sequential(embed, *blocks))
        self.stages = nn.Sequential(*stages)
        self.readout = tf.Readout(dim, num_classes)

    def forward(self, x):
        tf.check_input(type(self).__name__, x, self.multiple)
        return self.readout(self.stages(x))


#: name -> (depth, dim, heads, style, default input (channels, size))
CONFIGS = {
    "qkformer_4_384": (4, 384, 8, "cifar", (3, 32)),
    "qkformer_10_384": (10, 384, 6, "imagenet", (3, 224)),
    "qkformer_10_512": (10, 512, 8, "imagenet", (3, 224)),
    "qkformer_10_768": (10, 768, 12, "imagenet", (3, 224)),
}


def _build(name, num_classes=10, in_channels=None, neuron=None):
    depth, dim, heads, style, (channels, _) = CONFIGS[name]
    return QKFormer(depth, dim, heads, style, in_channels=in_channels or channels,
                    num_classes=num_classes, neuron=neuron)  # fmt: skip


qkformer_4_384 = functools.partial(_build, "qkformer_4_384")
qkformer_10_384 = functools.partial(_build, "qkformer_10_384")
qkformer_10_512 = functools.partial(_build, "qkformer_10_512")
qkformer_10_768 = functools.partial(_build, "qkformer_10_768")
