"""The neurons ``snetx-train --neuron`` offers, in one place: each names its class (in
:mod:`snetx.snn.neuron` and :mod:`snetx.cuend.neuron` alike) and checks the options it
reads, so a new neuron is one entry."""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Optional

__all__ = ["NeuronChoice", "NEURONS", "get"]


@dataclass(frozen=True)
class NeuronChoice:
    """``name`` (``--neuron``), the class name in both backends, what it is (help),
    ``check(args)`` returning an error message or None, and ``options(args)`` the keyword
    arguments of its own (beyond tau, reset, surrogate and alpha) it takes from ``args``."""

    name: str
    cls: str
    help: str
    check: Optional[Callable] = None
    options: Callable = lambda args: {}


def _plif_tau(args):
    if not args.tau > 1:
        return f"--neuron plif needs --tau > 1 (its starting value), got {args.tau}"
    return None


def _at_least_one(*names):
    def check(args):
        for name in names:
            value = getattr(args, name.replace("-", "_"))
            if not value >= 1:
                return f"--{name} must be >= 1, got {value}"
        return None

    return check


def _alif_check(args):
    if not args.beta >= 0:
        return f"--beta must be >= 0, got {args.beta}"
    return _at_least_one("tau-adapt")(args)


NEURONS = MappingProxyType(
    {
        "lif": NeuronChoice("lif", "LIF", "leaky integrate-and-fire, time constant --tau"),
        "plif": NeuronChoice(
            "plif", "PLIF", "a learned time constant per layer, starting at --tau", _plif_tau
        ),
        "cubalif": NeuronChoice(
            "cubalif",
            "CubaLIF",
            "a synaptic current (time constant --tau-syn) into a LIF (--tau)",
            _at_least_one("tau-syn"),
            lambda args: {"tau_syn": args.tau_syn},
        ),
        "alif": NeuronChoice(
            "alif",
            "ALIF",
            "an adaptive threshold (+--beta per spike, decaying with --tau-adapt)",
            _alif_check,
            lambda args: {"tau_adapt": args.tau_adapt, "beta": args.beta},
        ),
    }
)


def get(name: str) -> NeuronChoice:
    return NEURONS[name]
