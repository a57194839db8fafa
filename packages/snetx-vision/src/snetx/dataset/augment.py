r"""Training augmentations by name: what ``snetx-train --augment`` and the recipes choose.

``default`` is each dataset's own (see :func:`snetx.dataset.default_transforms`);
``none`` only normalises; ``autoaugment`` is the TET paper's CIFAR pipeline (random crop
with padding 4, horizontal flip, AutoAugment's CIFAR10 policy, normalisation, Cutout
16x16); ``flip-roll`` is its event-frame augmentation (a random horizontal flip and a
random shift of up to 5 pixels along each axis, wrapping around). Test sets are never
augmented.

Example::

    >>> import torch
    >>> from snetx.dataset.augment import FlipRoll, names
    >>> names("events")
    ('default', 'none', 'flip-roll')
    >>> frames = torch.rand(10, 2, 48, 48)
    >>> FlipRoll(shift=5, generator=torch.Generator().manual_seed(0))(frames).shape
    torch.Size([10, 2, 48, 48])
"""

import torch

from . import registry

__all__ = ["FlipRoll", "AUGMENTS", "names", "check", "is_random", "transforms"]

#: the augmentations each kind of data takes
AUGMENTS = {
    "image": ("default", "none", "autoaugment"),
    "events": ("default", "none", "flip-roll"),
    "sequence": ("default", "none"),
}


class FlipRoll:
    """Flip a ``T x C x H x W`` frame tensor horizontally with probability 1/2, then roll
    it by a random ``(dy, dx)`` in ``[-shift, shift]`` -- the same for all T frames."""

    def __init__(self, shift=5, generator=None):
        self.shift, self.generator = shift, generator

    def __call__(self, frames):
        g = self.generator
        if bool(torch.rand((), generator=g) < 0.5):
            frames = frames.flip(-1)
        dy, dx = torch.randint(-self.shift, self.shift + 1, (2,), generator=g).tolist()
        return frames.roll((dy, dx), dims=(-2, -1))

    def __repr__(self):
        return f"FlipRoll(shift={self.shift})"


def names(kind):
    """The augmentation names data of ``kind`` takes."""
    return AUGMENTS[kind]


def check(dataset, augment):
    """ValueError naming the choices when ``dataset`` does not take ``augment``."""
    spec = registry.get(dataset)
    choices = AUGMENTS[spec.kind]
    if augment == "autoaugment" and spec.kind == "image" and spec.channels != 3:
        choices = tuple(c for c in choices if c != "autoaugment")
    if augment not in choices:
        raise ValueError(
            f"--augment {augment} does not apply to {dataset}: choose one of {', '.join(choices)}"
        )


def is_random(dataset, augment):
    """Whether the training data of ``dataset`` with ``augment`` is randomly augmented."""
    if augment == "none":
        return False
    if augment == "default":
        return registry.get(dataset).augmentation != "none"
    return True


def transforms(dataset, augment):
    """``[train_transform, test_transform]`` for a loader's ``transforms`` argument, or
    None for the dataset's defaults."""
    check(dataset, augment)
    spec = registry.get(dataset)
    if augment == "default":
        return None
    if spec.kind != "image":
        return [FlipRoll(5) if augment == "flip-roll" else None, None]
    from ._common import default_transforms

    train, test = default_transforms(dataset, autoaugment=augment == "autoaugment")
    return [test, test] if augment == "none" else [train, test]
