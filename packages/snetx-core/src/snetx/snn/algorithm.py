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

from . import memory
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
    "AlphaSchedule",
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
        # compact saving (see snetx.snn.memory): packed spike inputs, one tensor for a
        # closing BatchNorm and the neuron that reads it
        out, c, r = memory.per_frame(self.module, x.flatten(0, 1), memory.codes(x), x)
        return memory.tag(out.unflatten(0, (n, t)), c, r, n, t)


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


def TETLoss(criterion, target, output, lamb=1e-3, phi=1.0, regularizer="mse"):
    r"""Temporal Efficient Training loss (Deng et al., ICLR 2022).

    .. math::
        \mathcal{L} = (1 - \lambda)\,\frac{1}{T}\sum_{t} \mathcal{L}_{CE}(O(t), y)
                      + \lambda\, \mathrm{MSE}(O, \phi)

    Args:
        criterion: per-step loss, e.g. ``nn.CrossEntropyLoss()``.
        target: labels of shape ``N`` (whatever ``criterion`` takes).
        output: per-step logits, ``N x T x C``.
        lamb (float): weight of the regulariser. Default 1e-3.
        phi (float): the MSE regulariser's target value. Default 1.0.
        regularizer (str): ``"mse"`` (default), the paper's :math:`\mathrm{MSE}(O, \phi)`;
            ``"mean"``, snetx 0.1.3's term :math:`\mathcal{L}_{CE}(\frac{1}{T}\sum_t O(t),
            y)` (the criterion on the mean output), to reproduce a run of that version.

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
    if regularizer == "mse":
        reg = F.mse_loss(output, torch.full_like(output, phi))
    elif regularizer == "mean":
        reg = criterion(output.mean(1), target)
    else:
        raise ValueError(f"regularizer must be 'mse' or 'mean', got {regularizer!r}")
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

    def __init__(self, criterion, lamb=1e-3, phi=1.0, regularizer="mse"):
        _check_lamb(lamb)
        if regularizer not in ("mse", "mean"):
            raise ValueError(f"regularizer must be 'mse' or 'mean', got {regularizer!r}")
        self.criterion, self.lamb, self.phi = criterion, lamb, phi
        self.regularizer = regularizer

    def __call__(self, target, output):
        return TETLoss(self.criterion, target, output, self.lamb, self.phi, self.regularizer)

    def __repr__(self):
        extra = "" if self.regularizer == "mse" else f", regularizer={self.regularizer!r}"
        return f"TET(criterion={self.criterion!r}, lamb={self.lamb}, phi={self.phi}{extra})"


class AlphaSchedule:
    r"""The schedule an :class:`EvolvedAlpha` follows: the factor
    :math:`1 + e_{max} \cdot \text{current} / \text{epoch}`.

    ``epoch`` is the number of epochs (an int >= 1), ``e_max`` a finite number >= 0,
    ``current`` the epochs done (an int >= 0, advanced by :meth:`step`).

    Example::

        >>> from snetx.snn.algorithm import AlphaSchedule, EvolvedAlpha
        >>> schedule = AlphaSchedule(epoch=10)
        >>> alpha = EvolvedAlpha(4.0, schedule=schedule)
        >>> alpha(), (schedule.step(), alpha())[1]
        (4.0, 4.4)
        >>> schedule.state_dict()
        {'epoch': 10, 'e_max': 1.0, 'current': 1}
    """

    def __init__(self, epoch=1, e_max=1.0, current=0):
        self.reset(epoch, e_max, current)

    def reset(self, epoch=1, e_max=1.0, current=0):
        """Set the schedule (checked as a whole: nothing changes when a value is wrong)."""
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
        self.epoch, self.e_max, self.current = int(epoch), e_max, int(current)

    def step(self):
        self.current += 1

    def factor(self) -> float:
        return 1 + self.e_max * self.current / self.epoch

    def state_dict(self):
        return {"epoch": self.epoch, "e_max": self.e_max, "current": self.current}

    def load_state_dict(self, state):
        self.reset(**state)

    def __repr__(self):
        return f"AlphaSchedule(epoch={self.epoch}, e_max={self.e_max}, current={self.current})"


class _SharedSchedule(type):
    """``EvolvedAlpha.epoch`` / ``.e_max`` / ``.current`` read and write the shared
    :class:`AlphaSchedule` (the original class-attribute API)."""

    def _field(name):
        return property(
            lambda cls: getattr(cls.schedule, name),
            lambda cls, value: setattr(cls.schedule, name, value),
        )

    epoch = _field("epoch")
    e_max = _field("e_max")
    current = _field("current")
    del _field


class EvolvedAlpha(metaclass=_SharedSchedule):
    r"""A surrogate sharpness that grows over training, for ``LIF(alpha=...)``.

    .. math::
        \alpha() = \text{base}\,\bigl(1 + e_{max} \cdot \text{current} / \text{epoch}\bigr)

    The schedule is an :class:`AlphaSchedule`: by default the one shared by every instance,
    ``EvolvedAlpha.schedule``, whose fields the original class-level API reads and writes
    (``EvolvedAlpha.epoch = 10``, ``EvolvedAlpha.step()``, ``EvolvedAlpha.reset(...)``);
    ``EvolvedAlpha(base, schedule=s)`` follows its own ``s`` instead (what a training loop
    that owns its state should do). The schedule is read when called, so a neuron built
    before the schedule is set still follows it.

    Example::

        >>> from snetx.snn.algorithm import EvolvedAlpha
        >>> EvolvedAlpha.epoch, EvolvedAlpha.e_max, EvolvedAlpha.current = 10, 1.0, 0
        >>> alpha = EvolvedAlpha(4.0)
        >>> alpha(), (EvolvedAlpha.step(), alpha())[1]
        (4.0, 4.4)
        >>> EvolvedAlpha.reset()
    """

    schedule = AlphaSchedule()

    def __init__(self, base=4.0, schedule=None):
        self.base = float(base)
        if schedule is not None and not isinstance(schedule, AlphaSchedule):
            raise TypeError(f"schedule must be an AlphaSchedule, got {schedule!r}")
        self._schedule = schedule

    def __call__(self) -> float:
        schedule = self._schedule if self._schedule is not None else type(self).schedule
        return self.base * schedule.factor()

    @classmethod
    def step(cls):
        cls.schedule.step()

    @classmethod
    def reset(cls, epoch=1, e_max=1.0, current=0):
        """Set the shared schedule (defaults restore the initial state)."""
        cls.schedule.reset(epoch, e_max, current)

    @classmethod
    def state_dict(cls):
        return cls.schedule.state_dict()

    @classmethod
    def load_state_dict(cls, state):
        cls.schedule.load_state_dict(state)

    def __repr__(self):
        own = "" if self._schedule is None else f", schedule={self._schedule!r}"
        return f"EvolvedAlpha(base={self.base}{own})"
