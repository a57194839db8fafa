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


def write_nmnist_bin(path, x, y, t, p):
    """N-MNIST's 40-bit events: x, y, then polarity (bit 7) and a 23-bit timestamp (us)."""
    t = np.asarray(t, dtype=np.uint32)
    raw = np.stack(
        [x, y, (np.asarray(p) << 7) | ((t >> 16) & 127), (t >> 8) & 255, t & 255], axis=1
    ).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def make_nmnist(root, per_split=(6, 3), seed=0):
    """A few samples per split; returns {split: [(events count, label), ...]} in the order
    tonic lists them (folders, then files, sorted)."""
    rng = np.random.default_rng(seed)
    made = {}
    for split, n in zip(("Train", "Test"), per_split):
        rows = []
        for i in range(n):
            label = i % 3
            count = int(rng.integers(5, 200))
            t = np.sort(rng.integers(0, 300_000, count))
            x, y = rng.integers(0, 34, count), rng.integers(0, 34, count)
            p = rng.integers(0, 2, count)
            write_nmnist_bin(root / "NMNIST" / split / str(label) / f"{i:05d}.bin", x, y, t, p)
            rows.append((label, x, y, t, p))
        made[split] = sorted(rows, key=lambda r: r[0])  # tonic walks digit folders in order
    return made


def make_shd(root, n=(8, 4), seed=1):
    import h5py

    rng = np.random.default_rng(seed)
    made = {}
    (root / "SHD").mkdir(parents=True, exist_ok=True)
    for split, count in zip(("train", "test"), n):
        times, units, labels = [], [], []
        for i in range(count):
            k = int(rng.integers(3, 120))
            times.append(np.sort(rng.random(k) * 0.9).astype(np.float16))
            units.append(rng.integers(0, 700, k).astype(np.uint16))
            labels.append(i % 20)
        with h5py.File(root / "SHD" / f"shd_{split}.h5", "w") as f:
            f.create_dataset(
                "spikes/times",
                data=np.array(times, dtype=object),
                dtype=h5py.vlen_dtype(np.float16),
            )
            f.create_dataset(
                "spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16)
            )
            f.create_dataset("labels", data=np.array(labels, dtype=np.uint16))
            f.create_dataset("extra/keys", data=np.array([b"k%d" % j for j in range(20)]))
            f.create_dataset("extra/speaker", data=np.zeros(count, dtype=np.uint16))
        made[split] = list(zip(labels, times, units))
    return made


def make_dvs_gesture(root, seed=2):
    """tonic's preprocessed DVS Gesture: per user and lighting, <label>.npy with columns
    x, y, p, t (ms)."""
    rng = np.random.default_rng(seed)
    made = {}
    for split, users in (("ibmGestureTrain", (1, 2)), ("ibmGestureTest", (3,))):
        rows = []
        for user in users:
            for label in (0, 4, 10):
                n = int(rng.integers(20, 150))
                ev = np.stack(
                    [rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                     np.sort(rng.integers(0, 900, n))], axis=1,
                )  # fmt: skip
                folder = root / "DVSGesture" / split / f"user{user:02d}_fluorescent"
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / f"{label}.npy", ev)
                rows.append((str(folder / f"{label}.npy"), label, ev))
        made[split] = [r[1:] for r in sorted(rows)]
    return made


def make_cifar10_dvs(root, classes=("airplane", "cat"), per_class=10, events=40):
    """CIFAR10-DVS as AEDAT4 files ``CIFAR10DVS/<class>/cifar10_<class>_<i>.aedat4``,
    written by dv-processing (the real on-disk format); returns the folder."""
    import dv_processing as dv

    base = Path(root, "CIFAR10DVS")
    for cls in classes:
        folder = base / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            writer = dv.io.MonoCameraWriter(
                str(folder / f"cifar10_{cls}_{i}.aedat4"),
                dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_sample", (128, 128)),
            )
            store = dv.EventStore()
            for k in range(events):
                store.push_back(1000 + 10 * k, (7 * k + i) % 128, (3 * k) % 128, bool(k % 2))
            writer.writeEvents(store)
            del writer  # closes the file
    return base


def _write_heidelberg(path, times, units, labels):
    """One split of a Heidelberg spike dataset (SHD, SSC) in its HDF5 layout."""
    import h5py

    def ragged(rows, dtype):
        out = np.empty(len(rows), dtype=object)
        out[:] = [np.asarray(r, dtype=dtype) for r in rows]
        return out

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=ragged(times, np.float16),
                         dtype=h5py.vlen_dtype(np.float16))  # fmt: skip
        f.create_dataset("spikes/units", data=ragged(units, np.uint16),
                         dtype=h5py.vlen_dtype(np.uint16))  # fmt: skip
        f.create_dataset("labels", data=np.array(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"k%d" % j for j in range(35)]))
        f.create_dataset("extra/speaker", data=np.zeros(len(labels), dtype=np.uint16))


def make_ssc(root, n=(12, 6, 5), seed=3):
    """SSC's three files (ssc_train.h5, ssc_valid.h5, ssc_test.h5); returns {split: [(label,
    times, units), ...]}."""
    rng = np.random.default_rng(seed)
    made = {}
    for split, count in zip(("train", "valid", "test"), n):
        rows = []
        for i in range(count):
            k = int(rng.integers(3, 90))
            rows.append((int(i % 35), np.sort(rng.random(k) * 0.9).astype(np.float16),
                         rng.integers(0, 700, k).astype(np.uint16)))  # fmt: skip
        _write_heidelberg(root / "SSC" / f"ssc_{split}.h5", [r[1] for r in rows],
                          [r[2] for r in rows], [r[0] for r in rows])  # fmt: skip
        made[split] = rows
    return made


def make_ncaltech101(root, classes=("accordion", "BACKGROUND_Google", "camera"), per_class=10,
                     seed=4):  # fmt: skip
    """N-Caltech101's layout and 40-bit event files (the N-MNIST encoding), recordings of
    varied size and offset; returns {class: [(x, y, t, p) per file in sorted order]}."""
    rng = np.random.default_rng(seed)
    made = {}
    for cls in classes:
        rows = []
        for i in range(per_class):
            n = int(rng.integers(20, 200))
            x0, y0 = int(rng.integers(0, 10)), int(rng.integers(0, 10))
            x = rng.integers(x0, x0 + 200, n)
            y = rng.integers(y0, y0 + 150, n)
            t = np.sort(rng.integers(0, 300_000, n))
            p = rng.integers(0, 2, n)
            path = root / "NCALTECH101" / "Caltech101" / cls / f"image_{i + 1:04d}.bin"
            write_nmnist_bin(path, x, y, t, p)
            rows.append((x, y, t, p))
        made[cls] = rows
    return made
