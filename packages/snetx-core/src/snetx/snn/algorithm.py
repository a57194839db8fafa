r"""STBP training algorithms: per-frame wrapping, direct encoding, TET loss, evolving alpha.

The surrogate Functions are re-exported here (``algorithm.arc_tan``), as in the original
snetx.
"""

import math
import numbers
import operator

import torch
from torch import nn
from torch.nn import functional as F

from .surrogate import (  # noqa: F401  (re-exported)
    arc_tan,
    fast_sigmoid,
    rectangular,
    sigmoid,
    ste,
    triangle,
)

__all__ = [
    "Tosnn",
    "DirectEncoder",
    "TETLoss",
    "TET",
    "EvolvedAlpha",
    "arc_tan",
    "sigmoid",
    "rectangular",
    "triangle",
    "fast_sigmoid",
    "ste",
]


class Tosnn(nn.Module):
    r"""Apply a per-frame module to ``N x T x ...`` by merging N and T.

    ``Tosnn(m)(x) = m(x.flatten(0, 1)).unflatten(0, (N, T))``.

    Shape:
        - Input: :math:`(N, T, *)`
        - Output: :math:`(N, T, *')` where ``m`` maps :math:`(N T, *)` to :math:`(N T, *')`.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from snetx.snn.algorithm import Tosnn
        >>> Tosnn(nn.Conv2d(3, 8, 3, padding=1))(torch.randn(2, 4, 3, 8, 8)).shape
        torch.Size([2, 4, 8, 8, 8])
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"Tosnn expects N x T x ..., got shape {tuple(x.shape)}")
        n, t = x.shape[:2]
        return self.module(x.flatten(0, 1)).unflatten(0, (n, t))


class DirectEncoder(nn.Module):
    r"""Direct (analog) encoding: repeat a static input ``T`` times along dim 1.

    Shape:
        - Input: :math:`(N, *)`
        - Output: :math:`(N, T, *)`

    Example::

        >>> import torch
        >>> from snetx.snn.algorithm import DirectEncoder
        >>> DirectEncoder(4)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 4, 3, 32, 32])
    """

    def __init__(self, T: int):
        super().__init__()
        try:
            if isinstance(T, bool):
                raise TypeError
            steps = operator.index(T)  # int, numpy integers, 0-dim integer tensors
        except TypeError:
            raise ValueError(f"T must be an int >= 1, got {T!r}") from None
        if steps < 1:
            raise ValueError(f"T must be an int >= 1, got {T!r}")
        self.T = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).repeat(1, self.T, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"T={self.T}"


def TETLoss(criterion, target, output, lamb=1e-3, phi=1.0):
    r"""Temporal Efficient Training loss (Deng et al., ICLR 2022).

    .. math::
        \mathcal{L} = (1 - \lambda)\,\frac{1}{T}\sum_{t} \mathcal{L}_{CE}(O(t), y)
                      + \lambda\, \mathrm{MSE}(O, \phi)

    Args:
        criterion: per-step loss, e.g. ``nn.CrossEntropyLoss()``.
        target: labels of shape ``N`` (whatever ``criterion`` takes).
        output: per-step logits, ``N x T x C``.
        lamb (float): weight of the MSE regulariser. Default 1e-3.
        phi (float): the regulariser's target value. Default 1.0.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from snetx.snn.algorithm import TETLoss
        >>> out, y = torch.zeros(2, 4, 10), torch.tensor([1, 2])
        >>> round(TETLoss(nn.CrossEntropyLoss(), y, out, lamb=0.0).item(), 4)  # log(10)
        2.3026
    """
    if output.dim() < 3:
        raise ValueError(f"TETLoss expects output N x T x C, got shape {tuple(output.shape)}")
    T = output.shape[1]
    if T == 0:
        raise ValueError(f"TETLoss needs at least one time step, got output {tuple(output.shape)}")
    _check_lamb(lamb)
    per_step = sum(criterion(output[:, t], target) for t in range(T)) / T
    reg = F.mse_loss(output, torch.full_like(output, phi))
    return (1 - lamb) * per_step + lamb * reg


def _check_lamb(lamb):
    if isinstance(lamb, bool) or not isinstance(lamb, numbers.Real) or not 0 <= lamb <= 1:
        raise ValueError(f"lamb must be a number in [0, 1], got {lamb!r}")


class TET:
    r""":func:`TETLoss` as a callable ``loss(target, output)`` (target first, as originally).

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from snetx.snn.algorithm import TET
        >>> loss = TET(nn.CrossEntropyLoss(), lamb=1e-3)
        >>> loss(torch.tensor([0]), torch.randn(1, 4, 10)).shape
        torch.Size([])
    """

    def __init__(self, criterion, lamb=1e-3, phi=1.0):
        _check_lamb(lamb)
        self.criterion, self.lamb, self.phi = criterion, lamb, phi

    def __call__(self, target, output):
        return TETLoss(self.criterion, target, output, self.lamb, self.phi)

    def __repr__(self):
        return f"TET(criterion={self.criterion!r}, lamb={self.lamb}, phi={self.phi})"


class EvolvedAlpha:
    r"""A surrogate sharpness that grows over training, for ``LIF(alpha=...)``.

    .. math::
        \alpha() = \text{base}\,\bigl(1 + e_{max} \cdot \text{current} / \text{epoch}\bigr)

    ``epoch`` (total epochs, default 1), ``e_max`` (default 1.0) and ``current`` (default 0)
    are class attributes shared by every instance; ``EvolvedAlpha.step()`` advances
    ``current`` by one (call it once per epoch). The schedule is read when called, so a
    neuron built before the schedule is set still follows it.

    Example::

        >>> from snetx.snn.algorithm import EvolvedAlpha
        >>> EvolvedAlpha.epoch, EvolvedAlpha.e_max, EvolvedAlpha.current = 10, 1.0, 0
        >>> alpha = EvolvedAlpha(4.0)
        >>> alpha(), (EvolvedAlpha.step(), alpha())[1]
        (4.0, 4.4)
        >>> EvolvedAlpha.reset()
    """

    epoch = 1
    e_max = 1.0
    current = 0

    def __init__(self, base=4.0):
        self.base = float(base)

    def __call__(self) -> float:
        cls = type(self)
        return self.base * (1 + cls.e_max * cls.current / cls.epoch)

    @classmethod
    def step(cls):
        cls.current += 1

    @classmethod
    def reset(cls, epoch=1, e_max=1.0, current=0):
        """Set the schedule (defaults restore the initial state). ``epoch`` is the number of
        epochs (an int >= 1), ``e_max`` a finite number >= 0, ``current`` an int >= 0."""
        for name, value in (("epoch", epoch), ("current", current)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"EvolvedAlpha {name} must be an int, got {value!r}")
        if epoch < 1:
            raise ValueError(f"EvolvedAlpha epoch (the number of epochs) must be >= 1, got {epoch}")
        if current < 0:
            raise ValueError(f"EvolvedAlpha current must be >= 0, got {current}")
        if (
            isinstance(e_max, bool)
            or not isinstance(e_max, numbers.Real)
            or not (math.isfinite(e_max) and e_max >= 0)
        ):
            raise ValueError(f"EvolvedAlpha e_max must be a finite number >= 0, got {e_max!r}")
        cls.epoch, cls.e_max, cls.current = int(epoch), e_max, int(current)

    @classmethod
    def state_dict(cls):
        return {"epoch": cls.epoch, "e_max": cls.e_max, "current": cls.current}

    @classmethod
    def load_state_dict(cls, state):
        cls.reset(**state)

    def __repr__(self):
        return f"EvolvedAlpha(base={self.base})"
