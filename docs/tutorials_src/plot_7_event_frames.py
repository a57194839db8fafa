"""
Event-camera frames
===================

An event camera reports ``(x, y, t, polarity)`` events instead of images;
:mod:`snetx.dataset.neuromorphic` bins each recording's events into ``T`` frames of event
counts per polarity. Here a small N-MNIST-format folder is written (the real 40-bit
``.bin`` encoding, so tonic reads it as it reads the dataset), loaded with
:func:`~snetx.dataset.neuromorphic.nmnist_dataset`, and one sample's frames are shown.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from snetx.dataset import neuromorphic


def write_nmnist_bin(path, x, y, t, p):
    """N-MNIST's events: 5 bytes each, x, y, then polarity (bit 7) and a 23-bit time (us)."""
    t = np.asarray(t, dtype=np.uint32)
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 127), (t >> 8) & 255, t & 255], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.astype(np.uint8).tobytes())


# A "saccade" over a ring: ON events on the leading edge, OFF events on the trailing one,
# as the sensor moves right over 300 ms.
rng = np.random.default_rng(0)
root = Path(tempfile.mkdtemp())
for split, n in (("Train", 4), ("Test", 2)):
    for i in range(n):
        angle = rng.uniform(0, 2 * np.pi, 3000)
        t = np.sort(rng.integers(0, 300_000, 3000))
        shift = (t / 300_000 * 10).astype(int)  # moves 10 pixels in 300 ms
        x = np.clip(16 + (9 * np.cos(angle)).astype(int) + shift - 5, 0, 33)
        y = np.clip(17 + (9 * np.sin(angle)).astype(int), 0, 33)
        p = (np.cos(angle) > 0).astype(np.uint32)  # ON on the right of the ring
        write_nmnist_bin(root / "NMNIST" / split / str(i % 2) / f"{i:05d}.bin", x, y, t, p)

train, test = neuromorphic.nmnist_dataset(
    root, 2, 2, T=5, download=False, num_workers=0, cache_dir=root / "frames"
)
frames, label = test.dataset[0]
print("frames:", tuple(frames.shape), "(T x polarity x H x W), label", label)
print("events per frame:", frames.sum(dim=(1, 2, 3)).tolist())

# %%
# Each column is one time bin (equal event counts: ``split_by="number"``); red are ON
# events, blue OFF events. The ring moves right from bin to bin.

fig, axes = plt.subplots(1, frames.shape[0], figsize=(10, 2.4))
for k, ax in enumerate(axes):
    on, off = frames[k, 1].numpy(), frames[k, 0].numpy()
    rgb = np.stack([on / max(on.max(), 1), np.zeros_like(on), off / max(off.max(), 1)], -1)
    ax.imshow(rgb, interpolation="nearest")
    ax.set(title=f"t = {k}", xticks=[], yticks=[])
fig.tight_layout()
