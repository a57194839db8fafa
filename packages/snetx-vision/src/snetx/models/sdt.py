r"""Spike-driven Transformer V1 (Yao et al., "Spike-driven Transformer", NeurIPS 2023),
following the authors' released code (github.com/BICLab/Spike-Driven-Transformer:
``module/ms_conv.py``, ``module/sps.py``, ``model/spikeformer.py`` and ``conf/``).

Membrane-shortcut (MS) residuals: the stream between blocks is real-valued and every
branch starts with a neuron. The tokenizer is SPS with a membrane shortcut in its
position embedding (``x + BN(conv(LIF(x)))``, ``x`` before its neuron); a block is

.. math::
    x \leftarrow x + \text{BN}(W_p\, \text{SDSA}(Q, K, V)), \qquad
    x \leftarrow x + \text{BN}(W_2\, \text{LIF}(\text{BN}(W_1\, \text{LIF}(x))))

with Q, K, V = ``LIF(BN(W LIF(x)))`` and the spike-driven self-attention

.. math::
    \text{SDSA}(Q, K, V) = Q \otimes \mathcal{SN}_{0.5}\Big(\sum_{\text{tokens}} K
    \otimes V\Big),

a Hadamard product, a column sum and a neuron with threshold 0.5 that fires a binary
channel mask: no matrix multiplication, no softmax, no scale. The read-out is a LIF on
the tokens' mean, then a linear layer, at every step. The released attention registers a
``talking_heads`` 1x1 convolution it never applies; it is left out, and the counts are
the paper's: 10.28 M for 2-512 (with CIFAR-100's 100 classes; 10.23 M with 10), 2.57 M
for DVS 2-256, 16.81 / 29.68 / 66.34 M for ImageNet 8-384 / 8-512 / 8-768 (the same as
Spikformer's, whose layers have the same shapes).

Configurations: ``sdt_2_512`` (CIFAR-10/100: 32x32, max-pools after SPS stages 3 and 4,
``pooling_stat="0011"``), ``sdt_2_256_dvs`` (CIFAR10-DVS as ``conf/cifar10-dvs``
releases it: 64x64 event frames, 2 channels, ``"0011"``, in the code's DVS mode, which
also max-pools K, V and the attention output 3x3 per frame, ``Erode``),
``sdt_8_384``/``sdt_8_512``/``sdt_8_768`` (ImageNet 224x224, pools after every
stage). Neurons as in :mod:`snetx.models.spikformer` (``LIF(tau=2, detach=True)`` by
default; attention neurons ``v_th=0.5``).

Example::

    >>> import torch
    >>> from snetx.models.sdt import sdt_2_512
    >>> net = sdt_2_512(num_classes=100)
    >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)   # the paper: 10.28 M
    10.28
    >>> net(torch.rand(1, 2, 3, 32, 32)).shape
    torch.Size([1, 2, 100])
"""

import functools

from snetx.snn import energy
from snetx.snn.algorithm import Tosnn
from torch import nn

from . import _transformer as tf
from .spikformer import default_neuron

__all__ = ["SpikeDrivenTransformer", "SDSA", "CONFIGS", "sdt_2_512", "sdt_2_256_dvs",
           "sdt_8_384", "sdt_8_512", "sdt_8_768"]  # fmt: skip


class SPS(nn.Module):
    """MS-SPS: ``N x T x C_in x H x W`` -> a real-valued map ``N x T x dim x H' x W'``."""

    def __init__(self, in_channels, dim, pools, neuron):
        super().__init__()
        widths = (in_channels, dim // 8, dim // 4, dim // 2)
        stages = []
        for i in range(3):
            stage = [tf.conv_bn(widths[i], widths[i + 1]), neuron()]
            if pools[i]:
                stage.append(tf.maxpool())
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.last = tf.conv_bn(dim // 2, dim, pool=pools[3])
        self.rpe = nn.Sequential(neuron(), tf.conv_bn(dim, dim))

    def forward(self, x):
        x = self.last(self.stages(x))
        return x + self.rpe(x)  # the membrane shortcut: x before its neuron


class _Erode(nn.Module):
    """A 3x3 max-pool per frame (stride 1), the released DVS mode's ``Erode``."""

    def __init__(self):
        super().__init__()
        self.pool = Tosnn(nn.MaxPool2d(3, 1, 1))

    def forward(self, x, size):
        n, t, h, length, d = x.shape
        maps = x.transpose(-1, -2).reshape(n, t, h * d, *size)
        return self.pool(maps).reshape(n, t, h, d, length).transpose(-1, -2)


class SDSA(nn.Module):
    r"""Spike-driven self-attention on ``N x T x dim x H x W`` (real-valued in, real out;
    see the module doc)."""

    def __init__(self, dim, num_heads, neuron, dvs=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.shortcut_lif = neuron()
        self.q, self.k, self.v = (tf.pixel_bn(dim, dim, False) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.mask_lif = neuron(v_th=0.5)  # the released talking_heads_lif
        self.proj = tf.pixel_bn(dim, dim, True)
        self.erode = _Erode() if dvs else None
        self.column_sum = energy.Sum(-2)  # counted by snetx.snn.energy

    def forward(self, x):
        size, h = x.shape[-2:], self.num_heads
        s = self.shortcut_lif(x)
        q = tf.heads(self.q_lif(self.q(s)).flatten(3), h)
        k = tf.heads(self.k_lif(self.k(s)).flatten(3), h)
        v = tf.heads(self.v_lif(self.v(s)).flatten(3), h)
        if self.erode is None:
            out = tf.spike_driven_attention(q, k, v, self.mask_lif, self.column_sum)
        else:  # DVS mode: K, V, K*V and the output eroded per frame
            k, v = self.erode(k, size), self.erode(v, size)
            kv = self.column_sum(self.erode(k * v, size))
            out = self.erode(q * self.mask_lif(kv), size)
        out = tf.merge_heads(out).unflatten(3, size)
        return x + self.proj(out)


class MLP(nn.Module):
    def __init__(self, dim, hidden, neuron):
        super().__init__()
        self.branch = nn.Sequential(
            neuron(), tf.pixel_bn(dim, hidden, True), neuron(), tf.pixel_bn(hidden, dim, True)
        )

    def forward(self, x):
        return x + self.branch(x)


class SpikeDrivenTransformer(nn.Module):
    r"""Args:
        depth, dim, num_heads, mlp_ratio: the blocks (``mlp_ratio`` 4).
        pools (4 bools): max-pools after the SPS stages (``"0011"`` CIFAR, ``"1111"``
            ImageNet and DVS).
        dvs (bool): the released DVS mode (eroded K, V and output).
        in_channels, num_classes: the data. neuron: as :class:`~.spikformer.Spikformer`.

    Shape:
        - Input: :math:`(N, T, C, H, W)`. Output: :math:`(N, T, \text{num\_classes})`.
    """

    def __init__(self, depth, dim, num_heads, pools=(False, False, True, True), dvs=False,
                 mlp_ratio=4.0, in_channels=3, num_classes=10, neuron=None):  # fmt: skip
        super().__init__()
        neuron = neuron or default_neuron
        self.multiple = 2 ** sum(pools)
        self.patch_embed = SPS(in_channels, dim, tuple(pools), neuron)
        self.blocks = nn.Sequential(*(
            nn.Sequential(SDSA(dim, num_heads, neuron, dvs), MLP(dim, int(dim * mlp_ratio), neuron))
            for _ in range(depth)
        ))  # fmt: skip
        self.readout = tf.Readout(dim, num_classes, neuron())

    def forward(self, x):
        tf.check_input(type(self).__name__, x, self.multiple)
        return self.readout(self.blocks(self.patch_embed(x)))


_CIFAR, _ALL = (False, False, True, True), (True, True, True, True)
#: name -> (depth, dim, heads, pools, dvs, default input (channels, size))
CONFIGS = {
    "sdt_2_512": (2, 512, 8, _CIFAR, False, (3, 32)),
    "sdt_2_256_dvs": (2, 256, 8, _CIFAR, True, (2, 64)),
    "sdt_8_384": (8, 384, 8, _ALL, False, (3, 224)),
    "sdt_8_512": (8, 512, 8, _ALL, False, (3, 224)),
    "sdt_8_768": (8, 768, 8, _ALL, False, (3, 224)),
}


def _build(name, num_classes=10, in_channels=None, neuron=None):
    depth, dim, heads, pools, dvs, (channels, _) = CONFIGS[name]
    return SpikeDrivenTransformer(depth, dim, heads, pools, dvs,
                                  in_channels=in_channels or channels, num_classes=num_classes,
                                  neuron=neuron)  # fmt: skip


sdt_2_512 = functools.partial(_build, "sdt_2_512")
sdt_2_256_dvs = functools.partial(_build, "sdt_2_256_dvs")
sdt_8_384 = functools.partial(_build, "sdt_8_384")
sdt_8_512 = functools.partial(_build, "sdt_8_512")
sdt_8_768 = functools.partial(_build, "sdt_8_768")
