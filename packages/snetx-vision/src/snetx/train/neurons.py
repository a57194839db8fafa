"""The neurons ``snetx-train --neuron`` offers, in one place: each names its class (in
:mod:`snetx.snn.neuron` and :mod:`snetx.cuend.neuron` alike) and checks the options it
reads, so a new neuron is one entry."""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Optional

__all__ = ["NeuronChoice", "NEURONS", "get"]


@dataclass(frozen=True)
class NeuronChoice:
    """``name`` (``--neuron``), the class name in both backends, what it is (help), and
    ``check(args)`` returning an error message or None."""

    name: str
    cls: str
    help: str
    check: Optional[Callable] = None


def _plif_tau(args):
    if not args.tau > 1:
        return f"--neuron plif needs --tau > 1 (its starting value), got {args.tau}"
    return None


NEURONS = MappingProxyType(
    {
        "lif": NeuronChoice("lif", "LIF", "leaky integrate-and-fire, time constant --tau"),
        "plif": NeuronChoice(
            "plif", "PLIF", "a learned time constant per layer, starting at --tau", _plif_tau
        ),
    }
)


def get(name: str) -> NeuronChoice:
    return NEURONS[name]
