"""Alias of :mod:`snetx.snn.algorithm` under the spelling of the original snetx README."""

from .algorithm import *  # noqa: F401,F403
from .algorithm import __all__  # noqa: F401
