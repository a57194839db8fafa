"""The two datasets added as one registry entry each, on files in their real formats:
SSC (the Heidelberg HDF5 layout, its own train/valid/test files) and N-Caltech101 (the
40-bit event files in class folders, a fixed per-class split), and SHD's validation split.
Frames are compared with an integration written here."""

import numpy as np
import pytest

pytest.importorskip("tonic")
pytest.importorskip("h5py")
from fake_data import make_ncaltech101, make_shd, make_ssc  # noqa: E402
from snetx.dataset import neuromorphic, registry  # noqa: E402
from snetx.dataset.ddp import neuromorphic as ddp_neuromorphic  # noqa: E402

LOAD = dict(download=False, num_workers=0)


def count_frames(columns, shape, T):
    """Equal-count bins (the remainder in the last one), then one count per event."""
    n = len(columns[0])
    per = n // T
    bins = np.full(n, T - 1) if per == 0 else np.minimum(np.arange(n) // per, T - 1)
    frames = np.zeros((T, *shape), dtype=np.float32)
    np.add.at(frames, (bins, *columns), 1)
    return frames


def test_ssc_has_its_three_files_as_splits(tmp_path):
    made = make_ssc(tmp_path)
    train, valid, test = neuromorphic.ssc_dataset(tmp_path, 3, 4, 5, validation=True, **LOAD)
    for loader, split in ((train, "train"), (valid, "valid"), (test, "test")):
        ds = loader.dataset
        assert len(ds) == len(made[split])
        for i, (label, _times, units) in enumerate(made[split]):
            frames, y = ds[i]
            assert y == label
            want = count_frames([units.astype(int)], (700,), 5)  # time-ordered in the file
            np.testing.assert_array_equal(frames.numpy(), want)
    assert registry.get("ssc").classes == 35 and len(train) == len(made["train"]) // 3
    assert neuromorphic.ssc_dataset(tmp_path, 3, 4, 5, **LOAD)[1].dataset.labels == [
        r[0] for r in made["test"]]  # fmt: skip


def test_shd_validation_is_the_last_tenth_of_each_class_of_the_training_file(tmp_path):
    made = make_shd(tmp_path, n=(40, 4))
    train, valid, test = neuromorphic.shd_dataset(tmp_path, 2, 4, 3, validation=True, **LOAD)
    labels = [r[0] for r in made["train"]]
    want_valid = []
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        want_valid += members[int(len(members) * 0.9 + 1e-9):]
    assert valid.dataset.source.indices == sorted(want_valid)
    assert sorted(train.dataset.source.indices + valid.dataset.source.indices) == list(range(40))
    assert len(test.dataset) == 4


def test_a_dataset_without_a_validation_split_says_which_have_one(tmp_path):
    with pytest.raises(ValueError, match="nmnist has no validation split.*shd, ssc"):
        neuromorphic.nmnist_dataset(tmp_path, 2, 2, 4, validation=True, **LOAD)


def test_ncaltech101_labels_split_and_frames(tmp_path):
    made = make_ncaltech101(tmp_path)
    train, test = neuromorphic.ncaltech101_dataset(tmp_path, 2, 4, 4, **LOAD)
    classes = sorted(made)  # labels: the index of the sorted folder name
    want = {"train": [], "test": []}
    for c in classes:  # per class: the first 90% of the sorted files train
        rows = [(classes.index(c), r) for r in made[c]]
        want["train"] += rows[:9]
        want["test"] += rows[9:]
    for loader, split in ((train, "train"), (test, "test")):
        ds = loader.dataset
        assert len(ds) == len(want[split])
        for i, (label, (x, y, _t, p)) in enumerate(want[split]):
            frames, got = ds[i]
            assert got == label
            x, y = x - x.min(), y - y.min()  # tonic: coordinates from the recording's corner
            np.testing.assert_array_equal(frames.numpy(), count_frames([p, y, x], (2, 180, 240), 4))
    small = neuromorphic.ncaltech101_dataset(tmp_path, 2, 4, 4, size=(45, 60), **LOAD)[1]
    frames, _ = small.dataset[0]
    assert frames.shape == (4, 2, 45, 60) and frames.sum() == len(want["test"][0][1][0])


def test_the_new_datasets_come_with_ddp_loaders_and_the_training_command(tmp_path):
    assert callable(ddp_neuromorphic.ssc_dataset) and callable(ddp_neuromorphic.ncaltech101_dataset)
    from snetx.train import main

    make_ssc(tmp_path / "data", n=(8, 2, 4))
    argv = ["--dataset", "ssc", "--data-dir", str(tmp_path / "data"), "--no-download", "--T", "4"]
    argv += ["--batch-size", "4", "--epochs", "1", "--quiet", "--no-plots", "--workers", "0"]
    assert main([*argv, "--out", str(tmp_path / "ssc")]) == 0
    make_ncaltech101(tmp_path / "data", per_class=10)
    argv = ["--dataset", "ncaltech101", "--data-dir", str(tmp_path / "data"), "--no-download"]
    argv += ["--T", "2", "--size", "32", "--batch-size", "4", "--epochs", "1", "--quiet"]
    argv += ["--no-plots", "--workers", "0", "--model", "vggsnn"]
    assert main([*argv, "--out", str(tmp_path / "nc")]) == 0
