"""Installed by snetx-core's ``snetx-core-guard.pth``: before ``snetx`` is first imported,
check that the old single-package ``snetx`` (0.1.x, on the registry under the same name)
has not been installed over the snetx distributions, whose files it replaces (its
``snetx/__init__.py`` then imports modules that are gone, and fails far from the cause).
Costs one finder on ``sys.meta_path``; the check itself runs once, at ``import snetx``.
"""

import os
import sys

FIX = (
    "the old single-package snetx {version} is installed over the snetx distributions and "
    "replaced their files: pip uninstall -y snetx snetx-core snetx-vision snetx-cuda, then "
    "install them again (README, Install)"
)


def old_single_package():
    """The installed version of the distribution named ``snetx`` when it is the old single
    package (before 0.2), else None (not installed, or the 0.2+ meta distribution)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        v = version("snetx")
    except PackageNotFoundError:
        return None
    try:
        major, minor = (int(p) for p in v.split(".")[:2])
    except ValueError:
        return None
    return v if (major, minor) < (0, 2) else None


class Guard:
    def __init__(self):
        self.done = False

    def find_spec(self, name, path=None, target=None):
        if name != "snetx" or self.done:
            return None
        self.done = True
        old = old_single_package()
        if old is None:
            return None
        message = FIX.format(version=old)
        command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        if command in ("snetx-train", "snetx-export"):  # a command line: one line, exit 2
            print(f"{command}: error: {message}", file=sys.stderr)
            raise SystemExit(2)
        raise ImportError(f"snetx: {message}", name="snetx")


def install():
    if not any(isinstance(f, Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, Guard())


install()
