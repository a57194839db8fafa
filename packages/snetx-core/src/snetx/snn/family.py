r"""The neuron family: one description per neuron, shared by every backend.

A neuron is named state variables (each ``N x ...``, zero at rest), decays (one per time
constant, ``1 / tau``, fixed or learned), constants (``v_th``, ``v_reset``, then its own)
and one plain step in torch ops. That step is the reference (the plain autograd loop
:func:`loop`), the eager backward and the form ``torch.compile`` traces; the native
backends run the struct of the same name in ``csrc/neurons.cuh`` (host C++ and CUDA), and
every argument list of them follows the description's counts. :data:`NEURONS` is the
registry; ``docs/adding-a-neuron.md`` walks through adding one.

Every step charges, fires (``s = H(z)``, surrogate ``sg`` in backward), resets (hard to
``v_reset``, or soft by subtracting the threshold when ``soft``) and updates the rest of
its state; ``detach`` makes the spike a constant wherever it updates state.
"""

from collections import namedtuple
from typing import Callable, NamedTuple, Tuple

__all__ = [
    "Description",
    "NEURONS",
    "register",
    "get",
    "loop",
    "LIFState",
    "CubaLIFState",
    "ALIFState",
]


class Description(NamedTuple):
    """What every backend knows of a neuron.

    ``name`` is its registry key and the prefix of its native symbols
    (``snetx_<name>_forward_f32``); ``native`` the struct in ``neurons.cuh`` (None: the
    neuron runs on the torch backends only); ``states``, ``decays`` and ``consts`` name
    its state variables, decays (by their time constant) and constants in the order every
    kernel takes them; ``state`` is the named tuple of its state; ``step(state, x, k, c,
    soft, sg, alpha, detach) -> (spikes, state)`` its plain step (``k`` a tuple of decays,
    numbers or tensors broadcasting against ``x``; ``c`` the constants)."""

    name: str
    native: str
    states: Tuple[str, ...]
    decays: Tuple[str, ...]
    consts: Tuple[str, ...]
    state: type
    step: Callable


#: Constants every kernel reads (v_th, v_reset and up to two of the neuron's own).
MAX_CONSTS = 4

NEURONS = {}


def register(desc: Description) -> Description:
    """Add a neuron to the family (its name must be new)."""
    if desc.name in NEURONS:
        raise ValueError(f"a neuron named {desc.name!r} is registered already")
    if desc.consts[:2] != ("v_th", "v_reset") or len(desc.consts) > MAX_CONSTS:
        raise ValueError(f"consts must start with v_th, v_reset, at most {MAX_CONSTS} in all")
    if tuple(desc.state._fields) != tuple(desc.states):
        raise ValueError("the state tuple's fields must be the state names")
    NEURONS[desc.name] = desc
    return desc


def get(name: str) -> Description:
    try:
        return NEURONS[name]
    except KeyError:
        raise ValueError(f"unknown neuron {name!r}; registered: {', '.join(NEURONS)}") from None


def _fire(z, sg, alpha, detach):
    """(spike, the spike as the state updates see it)."""
    s = sg.apply(z, alpha)
    return s, (s.detach() if detach else s)


def _reset(h, th, r, v_reset, soft):
    return h - th * r if soft else h * (1 - r) + v_reset * r


LIFState = namedtuple("LIFState", ["u"])
CubaLIFState = namedtuple("CubaLIFState", ["i", "u"])
ALIFState = namedtuple("ALIFState", ["u", "a"])


def lif_step(state, x, k, c, soft, sg, alpha, detach):
    (u,) = state
    v_th, v_reset = c[0], c[1]
    h = u * k[0] + x
    s, r = _fire(h - v_th, sg, alpha, detach)
    return s, LIFState(_reset(h, v_th, r, v_reset, soft))


def cubalif_step(state, x, k, c, soft, sg, alpha, detach):
    i, u = state
    v_th, v_reset = c[0], c[1]
    i = i * k[0] + x
    h = u * k[1] + i
    s, r = _fire(h - v_th, sg, alpha, detach)
    return s, CubaLIFState(i, _reset(h, v_th, r, v_reset, soft))


def alif_step(state, x, k, c, soft, sg, alpha, detach):
    u, a = state
    v_th, v_reset, beta = c[0], c[1], c[2]
    h = u * k[0] + x
    th = v_th + beta * a
    s, r = _fire(h - th, sg, alpha, detach)
    return s, ALIFState(_reset(h, th, r, v_reset, soft), a * k[1] + r)


LIF = register(
    Description("lif", "Lif", ("u",), ("tau",), ("v_th", "v_reset"), LIFState, lif_step)
)
CUBALIF = register(
    Description(
        "cubalif",
        "CubaLif",
        ("i", "u"),
        ("tau_syn", "tau"),
        ("v_th", "v_reset"),
        CubaLIFState,
        cubalif_step,
    )
)
ALIF = register(
    Description(
        "alif",
        "Alif",
        ("u", "a"),
        ("tau", "tau_adapt"),
        ("v_th", "v_reset", "beta"),
        ALIFState,
        alif_step,
    )
)


def loop(desc, x, k, c, soft, sg, alpha, detach, state0=None):
    """The plain autograd loop of ``desc``'s step over ``x`` (``N x T x ...``): returns
    ``(spikes, final state)``. ``state0`` is the state to start from (None: rest)."""
    import torch

    if state0 is None:
        zero = torch.zeros_like(x[:, 0])
        state0 = desc.state(*([zero] * len(desc.states)))
    state, spikes = desc.state(*state0), []
    for x_t in x.unbind(1):
        s, state = desc.step(state, x_t, k, c, soft, sg, alpha, detach)
        spikes.append(s)
    out = torch.stack(spikes, 1) if spikes else x.mul(0)
    return out, state
