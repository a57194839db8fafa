"""snetx: spiking neural networks with surrogate-gradient STBP training for PyTorch.

The ``snetx`` namespace is shared by several distributions. Subpackages load lazily
(``import snetx`` alone does not import torch)::

    snetx.snn      snetx-core     neurons, surrogates, algorithms
    snetx.nir      snetx-core     NIR export and import (extra: snetx-core[nir])
    snetx.cuend    snetx-cuda     fused CUDA LIF kernels
    snetx.dataset  snetx-vision   dataset loaders (single process and DDP)
    snetx.models   snetx-vision   spiking VGG
    snetx.train    snetx-vision   the snetx-train command
"""

import importlib
import importlib.abc
import sys
from pkgutil import extend_path

# Editable installs of snetx-cuda / snetx-vision put their own ``snetx`` folders on
# sys.path; extending __path__ merges them into this package.
__path__ = extend_path(__path__, __name__)

#: Which distribution provides each subpackage.
DISTRIBUTIONS = {
    "snn": "snetx-core",
    "nir": "snetx-core",
    "cuend": "snetx-cuda",
    "dataset": "snetx-vision",
    "models": "snetx-vision",
    "train": "snetx-vision",
}

__all__ = ["DISTRIBUTIONS", "__version__", "install_hint", *DISTRIBUTIONS]


def _read_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "unknown"
    try:
        return version("snetx-core")
    except PackageNotFoundError:
        return "unknown"


__version__ = _read_version()


def install_hint(dist: str, extras: str = "") -> str:
    """The command that installs ``dist`` (with ``extras``, e.g. ``"nir"``) as things are:
    snetx 0.2 is not on the package registry yet, so from a clone of the repository.

    >>> install_hint("snetx-core", "nir").split(" (")[0]
    "pip install './packages/snetx-core[nir]'"
    """
    target = f"./packages/{dist}" + (f"[{extras}]" if extras else "")
    if extras:
        target = f"'{target}'"
    return f"pip install {target} (from a snetx clone; snetx 0.2 is not on the registry yet)"


def _missing_message(name: str) -> str:
    dist = DISTRIBUTIONS[name]
    return (
        f"snetx.{name} is provided by the '{dist}' distribution, which is not installed: "
        + install_hint(dist)
    )


class _MissingDistributionFinder(importlib.abc.MetaPathFinder):
    """Last finder on sys.meta_path: turns 'No module named snetx.cuend' into a hint."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head == __name__ and name in DISTRIBUTIONS:
            raise ModuleNotFoundError(_missing_message(name), name=fullname)
        return None


if not any(isinstance(f, _MissingDistributionFinder) for f in sys.meta_path):
    sys.meta_path.append(_MissingDistributionFinder())


def __getattr__(name: str):
    if name in DISTRIBUTIONS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(DISTRIBUTIONS))
