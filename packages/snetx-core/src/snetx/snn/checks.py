"""Validation of neuron parameters and inputs, shared by every backend (snetx.snn and
snetx.cuend call the same functions, so they accept and refuse the same things)."""

import math
import numbers

import torch

__all__ = [
    "check_real",
    "check_params",
    "check_alpha",
    "resolve_alpha",
    "describe_alpha",
    "check_input",
]


def check_real(name, value):
    """A finite real number (not a bool), returned as given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_params(tau, v_th, v_reset):
    """Validate the neuron's constants; return them as floats (``v_reset`` None: the soft
    reset, by subtraction)."""
    named = [("tau", tau), ("v_th", v_th)] + ([] if v_reset is None else [("v_reset", v_reset)])
    for name, value in named:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if tau < 1:
        raise ValueError(f"tau must be >= 1 (1 means no leak, i.e. IF), got {tau!r}")
    if v_reset is not None and not v_reset < v_th:
        raise ValueError(f"v_reset must be < v_th, got v_reset={v_reset!r}, v_th={v_th!r}")
    return float(tau), float(v_th), (None if v_reset is None else float(v_reset))


def check_alpha(alpha):
    """alpha must be a real number or a zero-argument callable returning one."""
    if callable(alpha):
        return alpha
    if isinstance(alpha, torch.Tensor):
        resolve_alpha(alpha)  # refuses a tensor that requires grad: it would not be trained
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(
            f"alpha must be a number or a zero-argument callable returning one, got {alpha!r}"
        )
    resolve_alpha(alpha)
    return alpha


def describe_alpha(alpha) -> str:
    """How a neuron's repr shows ``alpha``: the number, or the callable's name or repr."""
    return str(alpha) if not callable(alpha) else getattr(alpha, "__name__", repr(alpha))


def resolve_alpha(alpha) -> float:
    """Read ``alpha`` once (call it when callable) and check it is a finite positive number."""
    value = alpha() if callable(alpha) else alpha
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise TypeError(
                "alpha is a tensor that requires grad, but the surrogate sharpness is not "
                "trained (no gradient would reach it): pass a float, or a callable returning one"
            )
        if value.numel() == 1:
            value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"alpha must give a real number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"alpha must be finite and > 0, got {value!r}")
    return value


def check_input(x):
    """A spiking input is a floating tensor ``N x T x ...`` (at least 2 dims)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"input must have at least 2 dims (N x T x ...), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}")
