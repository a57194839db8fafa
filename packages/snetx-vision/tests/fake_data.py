"""Small datasets written in the real on-disk formats torchvision reads."""

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx_images(path, images):
    n, h, w = images.shape
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, n, h, w))
        f.write(images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels):
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 0x00000801, len(labels)))
        f.write(np.asarray(labels, dtype=np.uint8).tobytes())


def make_mnist(root, folder="MNIST", n_train=50, n_test=20, seed=0):
    """IDX files in root/<folder>/raw, as torchvision's MNIST/FashionMNIST expect."""
    rng = np.random.default_rng(seed)
    raw = Path(root, folder, "raw")
    raw.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        write_idx_images(raw / f"{split}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{split}-labels-idx1-ubyte", labels)
        data[split] = (images, labels)
    return data


def make_cifar(root, hundred=False, per_batch=10, n_test=12, seed=0):
    """Python pickle batches as in the real CIFAR archives."""
    rng = np.random.default_rng(seed)
    if hundred:
        base = Path(root, "CIFAR100", "cifar-100-python")
        files, key, names_key, classes = (
            {"train": 5 * per_batch, "test": n_test},
            "fine_labels",
            "fine_label_names",
            100,
        )
        meta = "meta"
    else:
        base = Path(root, "CIFAR10", "cifar-10-batches-py")
        files = {f"data_batch_{i}": per_batch for i in range(1, 6)}
        files["test_batch"] = n_test
        key, names_key, classes, meta = "labels", "label_names", 10, "batches.meta"
    base.mkdir(parents=True, exist_ok=True)
    data = {}
    for name, n in files.items():
        arr = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=n).tolist()
        with open(base / name, "wb") as f:
            pickle.dump({"data": arr, key: labels}, f)
        data[name] = (arr, labels)
    with open(base / meta, "wb") as f:
        pickle.dump({names_key: [f"class{i}" for i in range(classes)]}, f)
    return data
