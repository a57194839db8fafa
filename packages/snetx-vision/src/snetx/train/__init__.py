"""snetx.train: the ``snetx-train`` command (also ``python -m snetx.train``).

Trains a spiking network end to end: dataset, model, STBP with TET or CE loss, progress
bars, metrics (JSONL), checkpoints after every epoch (atomic; Ctrl-C saves one too),
exact ``--resume``, DDP under torchrun, and plots. ``snetx-train --help`` lists options.
"""

from .cli import build_parser, main

__all__ = ["main", "build_parser"]
