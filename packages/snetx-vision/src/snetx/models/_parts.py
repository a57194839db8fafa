"""Building parts the residual networks share: per-frame conv + norm, stems, stages.

Every part maps ``N x T x C x H x W`` to ``N x T x C' x H' x W'``; convolutions and
norms run per frame through :class:`~snetx.snn.algorithm.Tosnn`, so a BatchNorm's
statistics are taken over ``N T H W`` together (the statistics of threshold-dependent
BN, tdBN, with its scale left at 1).
"""

from snetx.snn import neuron as _neuron
from snetx.snn.algorithm import Tosnn
from torch import nn

STEMS = ("cifar", "imagenet")


def conv_norm(cin, cout, kernel, stride, norm_layer, zero_init=False):
    """``Tosnn(conv (no bias) -> norm)``; ``zero_init`` starts the norm's scale at 0."""
    norm = norm_layer(cout)
    if zero_init and getattr(norm, "weight", None) is not None:
        nn.init.zeros_(norm.weight)
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
    return Tosnn(nn.Sequential(conv, norm))


def options(norm_layer, neuron, stem):
    """Defaults and checks of the options every residual network takes."""
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
    return norm_layer or nn.BatchNorm2d, neuron or _neuron.LIF


def stem_conv(stem, in_channels, width, norm_layer):
    """``cifar``: 3x3 stride 1 (32x32 inputs keep their size); ``imagenet``: 7x7 stride 2
    (ResNet's stem, 224 -> 112)."""
    if stem == "cifar":
        return conv_norm(in_channels, width, 3, 1, norm_layer)
    return conv_norm(in_channels, width, 7, 2, norm_layer)


def check_input(name, x, min_size):
    """One-line ValueError unless ``x`` is ``N x T x C x H x W`` with H, W >= min_size."""
    if x.dim() != 5:
        raise ValueError(f"{name} expects N x T x C x H x W, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"{name} needs frames of at least {min_size}x{min_size}, got "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
