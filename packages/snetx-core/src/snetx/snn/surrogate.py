r"""Surrogate gradient functions (the surrogate table (docs/specification.md)).

Every surrogate fires with the Heaviside step in the forward pass,
:math:`\Theta(z) = 1` if :math:`z \ge 0` else :math:`0`, and uses a smooth derivative
:math:`\sigma'(z; \alpha)` in the backward pass, where :math:`z = h - v_{th}`.

A surrogate is a :class:`torch.autograd.Function` called as ``sg.apply(z, alpha)``.
Subclasses of :class:`SurrogateFunction` only define ``derivative(z, alpha)``; the
forward and backward are derived from it, and fused LIF paths (the torch path here and
the CUDA kernels of snetx-cuda) call the same derivative. A user-defined surrogate on
this base class therefore works everywhere:

>>> import torch
>>> from snetx.snn import surrogate
>>> class Gaussian(surrogate.SurrogateFunction):
...     @staticmethod
...     def derivative(z, alpha):
...         return alpha * torch.exp(-((alpha * z) ** 2))
>>> z = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
>>> Gaussian.apply(z, 2.0)
tensor([0., 1., 1.], grad_fn=<GaussianBackward>)

Names shared by every backend: ``arctan`` (the default), ``sigmoid``, ``rectangular``,
``triangle``, ``fast_sigmoid``, ``ste`` (also accepted as ``LeakyReLU``).
"""

import math
from types import MappingProxyType

import torch

__all__ = [
    "SurrogateFunction",
    "arc_tan",
    "sigmoid",
    "rectangular",
    "triangle",
    "fast_sigmoid",
    "ste",
    "REGISTRY",
    "ALIASES",
    "REGISTERED_SG_FUNCLIST",
    "SURROGATE_IDS",
    "get",
    "canonical_name",
    "name_of",
    "has_derivative",
]


class SurrogateFunction(torch.autograd.Function):
    r"""Base class: forward :math:`\Theta(z)`, backward ``grad * derivative(z, alpha)``.

    Subclasses implement ``derivative(z, alpha)`` as a staticmethod of tensors. A subclass
    may set ``name`` to the string it is registered under.
    """

    name = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own_rule = "backward" in cls.__dict__ or cls.derivative is not SurrogateFunction.derivative
        if not own_rule:
            raise TypeError(
                f"surrogate {cls.__name__} must define derivative(z, alpha) as a staticmethod "
                "(or its own backward)"
            )
        # forward/backward close over the subclass so that each one differentiates with
        # its own derivative; torch's Function machinery looks them up on the class.
        if "forward" not in cls.__dict__:

            def forward(ctx, z, alpha):
                ctx.save_for_backward(z)
                ctx.alpha = alpha
                return (z >= 0).to(z.dtype)

            cls.forward = staticmethod(forward)
        if "backward" not in cls.__dict__:

            def backward(ctx, grad):
                (z,) = ctx.saved_tensors
                return grad * cls.derivative(z, ctx.alpha), None

            cls.backward = staticmethod(backward)

    @staticmethod
    def derivative(z, alpha):  # pragma: no cover - abstract
        raise NotImplementedError


class arc_tan(SurrogateFunction):
    r""":math:`\sigma'(z) = \frac{\alpha}{2(1 + (\frac{\pi}{2}\alpha z)^2)}` (default, α = 4)."""

    name = "arctan"

    @staticmethod
    def derivative(z, alpha):
        return (alpha / 2) / (1 + (math.pi / 2 * alpha * z) ** 2)


class sigmoid(SurrogateFunction):
    r""":math:`\sigma'(z) = \alpha\, g(\alpha z)(1 - g(\alpha z))`, g the logistic function."""

    name = "sigmoid"

    @staticmethod
    def derivative(z, alpha):
        g = torch.sigmoid(alpha * z)
        return alpha * g * (1 - g)


class rectangular(SurrogateFunction):
    r""":math:`\sigma'(z) = \alpha` if :math:`|z| < \frac{1}{2\alpha}` else 0."""

    name = "rectangular"

    @staticmethod
    def derivative(z, alpha):
        return (z.abs() < 1 / (2 * alpha)).to(z.dtype) * alpha


class triangle(SurrogateFunction):
    r""":math:`\sigma'(z) = \max(0, \alpha - \alpha^2 |z|)`."""

    name = "triangle"

    @staticmethod
    def derivative(z, alpha):
        return (alpha - alpha * alpha * z.abs()).clamp_min(0)


class fast_sigmoid(SurrogateFunction):
    r""":math:`\sigma'(z) = \frac{1}{(1 + \alpha |z|)^2}` (SuperSpike)."""

    name = "fast_sigmoid"

    @staticmethod
    def derivative(z, alpha):
        return 1 / (1 + alpha * z.abs()) ** 2


class ste(SurrogateFunction):
    r""":math:`\sigma'(z) = 1`: the straight-through estimator."""

    name = "ste"

    @staticmethod
    def derivative(z, alpha):
        return torch.ones_like(z)


#: Surrogates by their shared name (read-only: the native kernels know exactly these).
REGISTRY = MappingProxyType(
    {f.name: f for f in (arc_tan, sigmoid, rectangular, triangle, fast_sigmoid, ste)}
)
#: The id each native kernel (host C++ and CUDA) gives a surrogate: the one mapping the
#: ``enum`` in ``csrc/neurons.cuh`` must agree with (a test checks it).
SURROGATE_IDS = MappingProxyType({name: i for i, name in enumerate(REGISTRY)})
#: Other accepted spellings.
ALIASES = MappingProxyType({"LeakyReLU": "ste", "arc_tan": "arctan", "atan": "arctan"})
#: The names every backend accepts, as a tuple (snetx.cuend re-exports it).
REGISTERED_SG_FUNCLIST = tuple(REGISTRY)


def _known_names() -> str:
    return ", ".join(repr(n) for n in (*REGISTRY, *ALIASES))


def canonical_name(name: str) -> str:
    """The registry name for ``name`` or one of its aliases; ValueError when unknown."""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ValueError(f"unknown surrogate name {name!r}; known names: {_known_names()}")
    return name


def get(sg):
    """Resolve ``sg`` (a name or an autograd Function with ``apply``) to a Function class."""
    if isinstance(sg, str):
        return REGISTRY[canonical_name(sg)]
    if isinstance(sg, type) and issubclass(sg, torch.autograd.Function):
        return sg
    raise TypeError(
        "sg must be a surrogate name or a torch.autograd.Function subclass called as "
        f"sg.apply(z, alpha); got {sg!r}. Known names: {_known_names()}"
    )


def has_derivative(sg) -> bool:
    """True when ``sg`` exposes ``derivative(z, alpha)``, so fused paths can use it."""
    return (
        isinstance(sg, type)
        and issubclass(sg, SurrogateFunction)
        and (sg.derivative is not SurrogateFunction.derivative)
    )


def name_of(sg):
    """The shared registry name of ``sg`` (a name or Function), or None for custom ones."""
    if isinstance(sg, str):
        return canonical_name(sg)
    for name, fn in REGISTRY.items():
        if fn is sg:
            return name
    return None
