r"""Spikformer (Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer",
ICLR 2023), following the authors' released code (github.com/ZK-Zhou/spikformer:
``cifar10/model.py``, ``imagenet/model.py``, ``cifar10dvs/model.py``).

A spiking patch splitting (SPS) tokenizer — four 3x3 conv + BN + LIF stages widening to
``dim`` (``dim/8, dim/4, dim/2, dim``) with max-pools, then a relative position embedding
(3x3 conv + BN + LIF added to its input) — and ``depth`` blocks of

.. math::
    x \leftarrow x + \text{SSA}(x), \qquad x \leftarrow x + \text{MLP}(x)

with Spiking Self-Attention :math:`\text{SSA} = \text{LIF}(\text{BN}(W_p\,
\text{LIF}_{0.5}(Q K^\top V s)))` on spike Q, K, V (each ``LIF(BN(W x))``), ``s`` the
scale, and an MLP of two ``LIF(BN(W x))`` layers (ratio 4). The class scores are a linear
layer on the tokens' mean, at every step (``N x T x classes``; the paper averages over T).

Configurations as released (``configs``): CIFAR (32x32, max-pools after SPS stages 3 and 4,
Linear q/k/v with bias, scale 0.125), ImageNet (224x224, a max-pool after every stage, 1x1
convs without bias, scale 0.125) and CIFAR10-DVS (128x128 event frames, 2 channels, T=16,
scale 0.25). The released code also registers LayerNorms (two per block) and, for DVS, a
position embedding that its forward never uses; they are left out, and the parameter
counts are then the paper's (9.32 M, 2.57 M, 16.81 M, 29.68 M, 66.34 M; with them they
would be 0.1-0.6 % above).

The released neuron is SpikingJelly's LIF with ``tau=2``, ``detach_reset=True``, which
charges ``h = u + (x - u)/tau``; the default here is snetx's ``LIF(tau=2, detach=True)``,
``h = u/tau + x`` (the same decay, the input not halved). Pass
``neuron=`` to choose (attention neurons get ``v_th=0.5``).

Example::

    >>> import torch
    >>> from snetx.models.spikformer import spikformer_4_384
    >>> net = spikformer_4_384(num_classes=10)
    >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)   # the paper: 9.32 M
    9.32
    >>> net(torch.rand(2, 1, 3, 32, 32)).shape
    torch.Size([2, 1, 10])
"""

import functools

from snetx.snn import energy
from snetx.snn import neuron as _neuron
from torch import nn

from . import _transformer as tf

__all__ = ["Spikformer", "SSA", "CONFIGS", "spikformer_4_384", "spikformer_2_256_dvs",
           "spikformer_8_384", "spikformer_8_512", "spikformer_8_768"]  # fmt: skip

#: the released styles: max-pools after the SPS stages, q/k/v bias, attention scale
STYLES = {
    "cifar": dict(pools=(False, False, True, True), qkv_bias=True, scale=0.125),
    "imagenet": dict(pools=(True, True, True, True), qkv_bias=False, scale=0.125),
    "dvs": dict(pools=(True, True, True, True), qkv_bias=False, scale=0.25),
}


def default_neuron(**kwargs):
    """The released neuron's settings in snetx: LIF, tau 2, the reset's spike detached."""
    return _neuron.LIF(tau=2.0, detach=True, **kwargs)


class SPS(nn.Module):
    """Spiking patch splitting: ``N x T x C_in x H x W`` -> tokens ``N x T x dim x L``."""

    def __init__(self, in_channels, dim, pools, neuron):
        super().__init__()
        widths = (in_channels, dim // 8, dim // 4, dim // 2, dim)
        stages = []
        for i, pool in enumerate(pools):
            stage = [tf.conv_bn(widths[i], widths[i + 1]), neuron()]
            if pool:
                stage.append(tf.maxpool())
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.rpe = nn.Sequential(tf.conv_bn(dim, dim), neuron())

    def forward(self, x):
        x = self.stages(x)
        x = x + self.rpe(x)
        return x.flatten(3)


class SSA(nn.Module):
    r"""Spiking Self-Attention on tokens ``N x T x dim x L`` (see the module doc)."""

    def __init__(self, dim, num_heads, qkv_bias, scale, neuron):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.scale = num_heads, scale
        self.q, self.k, self.v = (tf.token_bn(dim, dim, qkv_bias) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.attn_lif = neuron(v_th=0.5)
        self.proj = tf.token_bn(dim, dim, True)
        self.proj_lif = neuron()
        self.matmul = energy.MatMul()  # counted by snetx.snn.energy

    def forward(self, x):
        h = self.num_heads
        q = tf.heads(self.q_lif(self.q(x)), h)
        k = tf.heads(self.k_lif(self.k(x)), h)
        v = tf.heads(self.v_lif(self.v(x)), h)
        out = tf.merge_heads(tf.spiking_self_attention(q, k, v, self.scale, self.matmul))
        return self.proj_lif(self.proj(self.attn_lif(out)))


class MLP(nn.Module):
    """Two ``LIF(BN(W x))`` token layers, ``dim -> ratio * dim -> dim``."""

    def __init__(self, dim, hidden, neuron):
        super().__init__()
        self.fc1, self.lif1 = tf.token_bn(dim, hidden, True), neuron()
        self.fc2, self.lif2 = tf.token_bn(hidden, dim, True), neuron()

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, scale, neuron):
        super().__init__()
        self.attn = SSA(dim, num_heads, qkv_bias, scale, neuron)
        self.mlp = MLP(dim, int(dim * mlp_ratio), neuron)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    r"""Args:
        depth (int): the number of blocks. dim (int): the token width.
        num_heads (int), mlp_ratio (float): attention heads; MLP width ratio (4).
        style (str): ``"cifar"``, ``"imagenet"`` or ``"dvs"`` (see the module doc).
        in_channels (int), num_classes (int): the data.
        neuron: a neuron factory taking keyword arguments (``v_th``); default snetx's
            ``LIF(tau=2, detach=True)``.

    Shape:
        - Input: :math:`(N, T, C, H, W)`, H and W divisible by 16 (by 4 for ``cifar``).
        - Output: :math:`(N, T, \text{num\_classes})`.
    """

    def __init__(self, depth, dim, num_heads, style="cifar", mlp_ratio=4.0, in_channels=3,
                 num_classes=10, neuron=None):  # fmt: skip
        super().__init__()
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        neuron = neuron or default_neuron
        s = STYLES[style]
        self.multiple = 2 ** sum(s["pools"])
        self.patch_embed = SPS(in_channels, dim, s["pools"], neuron)
        self.blocks = nn.Sequential(*(
            Block(dim, num_heads, mlp_ratio, s["qkv_bias"], s["scale"], neuron)
            for _ in range(depth)
        ))  # fmt: skip
        self.readout = tf.Readout(dim, num_classes)

    def forward(self, x):
        tf.check_input(type(self).__name__, x, self.multiple)
        return self.readout(self.blocks(self.patch_embed(x)))


#: name -> (depth, dim, heads, style, default input (channels, size)), the papers' tables
CONFIGS = {
    "spikformer_4_384": (4, 384, 12, "cifar", (3, 32)),
    "spikformer_2_256_dvs": (2, 256, 16, "dvs", (2, 128)),
    "spikformer_8_384": (8, 384, 12, "imagenet", (3, 224)),
    "spikformer_8_512": (8, 512, 8, "imagenet", (3, 224)),
    "spikformer_8_768": (8, 768, 12, "imagenet", (3, 224)),
}


def _build(name, num_classes=10, in_channels=None, neuron=None):
    depth, dim, heads, style, (channels, _) = CONFIGS[name]
    return Spikformer(depth, dim, heads, style, in_channels=in_channels or channels,
                      num_classes=num_classes, neuron=neuron)  # fmt: skip


spikformer_4_384 = functools.partial(_build, "spikformer_4_384")
spikformer_2_256_dvs = functools.partial(_build, "spikformer_2_256_dvs")
spikformer_8_384 = functools.partial(_build, "spikformer_8_384")
spikformer_8_512 = functools.partial(_build, "spikformer_8_512")
spikformer_8_768 = functools.partial(_build, "spikformer_8_768")
