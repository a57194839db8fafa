"""Neuromorphic loaders on small files in the real on-disk formats (N-MNIST .bin, SHD
HDF5) with known events, read through tonic."""

import numpy as np
import pytest
import torch

pytest.importorskip("tonic")
h5py = pytest.importorskip("h5py")
from fake_data import make_dvs_gesture, make_nmnist, make_shd  # noqa: E402
from snetx.dataset import DatasetNotFoundError, neuromorphic  # noqa: E402


def _bin_counts(n, T):
    per = n // T
    counts = [per] * T
    counts[-1] += n - per * T
    return counts


@pytest.mark.parametrize("T", [1, 4, 7])
def test_nmnist_frames_count_every_event_in_its_bin(tmp_path, T):
    made = make_nmnist(tmp_path)
    train, test = neuromorphic.nmnist_dataset(tmp_path, 2, 8, T, download=False, num_workers=0)
    x, y = next(iter(test))
    assert x.shape == (3, T, 2, 34, 34) and x.dtype == torch.float32 and y.dtype == torch.int64
    for i, (label, ex, ey, _et, ep) in enumerate(made["Test"]):
        assert int(y[i]) == label
        per_bin = x[i].sum(dim=(1, 2, 3)).tolist()
        assert per_bin == _bin_counts(len(ex), T)  # the remainder goes to the last bin
        expected = np.zeros((2, 34, 34), dtype=np.float32)
        np.add.at(expected, (ep, ey, ex), 1)
        assert torch.equal(x[i].sum(0), torch.from_numpy(expected))  # every event, its pixel
    assert len(train.dataset) == 6 and len(train) == 3


def test_split_by_time_and_resize_keep_every_event(tmp_path):
    made = make_nmnist(tmp_path)
    _, test = neuromorphic.nmnist_dataset(
        tmp_path, 2, 8, 5, download=False, num_workers=0, split_by="time", size=(17, 17)
    )
    x, _ = next(iter(test))
    assert x.shape == (3, 5, 2, 17, 17)
    for i, (_, ex, _ey, et, _ep) in enumerate(made["Test"]):
        assert x[i].sum().item() == len(ex)
        span = et.max() - et.min()
        bins = np.minimum(((et - et.min()) * 5 / span).astype(int), 4)
        assert x[i].sum(dim=(1, 2, 3)).tolist() == np.bincount(bins, minlength=5).tolist()


def test_shd_frames(tmp_path):
    made = make_shd(tmp_path)
    train, test = neuromorphic.shd_dataset(tmp_path, 4, 4, 6, download=False, num_workers=0)
    x, y = next(iter(test))
    assert x.shape == (4, 6, 700) and y.tolist() == [r[0] for r in made["test"]]
    for i, (_, _times, units) in enumerate(made["test"]):
        assert x[i].sum(0).tolist() == np.bincount(units, minlength=700).tolist()
        assert x[i].sum(1).tolist() == _bin_counts(len(units), 6)
    assert len(train) == 2


def test_cache_is_reused_rebuilt_on_change_and_on_damage(tmp_path, monkeypatch):
    make_nmnist(tmp_path)
    calls = []
    real = neuromorphic.integrate
    monkeypatch.setattr(neuromorphic, "integrate", lambda *a, **k: calls.append(1) or real(*a, **k))
    args = (tmp_path, 2, 8)
    neuromorphic.nmnist_dataset(*args, 4, download=False, num_workers=0)
    assert len(calls) == 9  # 6 train + 3 test, computed once
    _, test = neuromorphic.nmnist_dataset(*args, 4, download=False, num_workers=0)
    first = next(iter(test))[0]
    assert len(calls) == 9  # second load: read from disk
    neuromorphic.nmnist_dataset(*args, 5, download=False, num_workers=0)
    assert len(calls) == 18  # another T: another cache
    (entry,) = [p for p in test.dataset.cache.glob("0.npz")]
    entry.write_bytes(b"PK garbage")
    again = next(iter(test))[0]
    assert len(calls) == 19 and torch.equal(again, first)  # damaged entry recomputed


def test_missing_dataset_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"NMNIST.*Train/<digit>/\*\.bin.*download"):
        neuromorphic.nmnist_dataset(tmp_path, 2, 2, 4, download=False, num_workers=0)
    with pytest.raises(DatasetNotFoundError, match=r"shd_train\.h5"):
        neuromorphic.shd_dataset(tmp_path, 2, 2, 4, download=False, num_workers=0)


def test_integrate_checks_its_arguments():
    ev = np.zeros(3, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    with pytest.raises(ValueError, match="split_by must be one of"):
        neuromorphic.integrate(ev, (34, 34, 2), 4, split_by="count")
    with pytest.raises(ValueError, match="T must be an int >= 1"):
        neuromorphic.integrate(ev, (34, 34, 2), 0)
    assert neuromorphic.integrate(ev, (34, 34, 2), 4).sum(axis=(1, 2, 3)).tolist() == [0, 0, 0, 3]


def test_dvs_gesture_frames(tmp_path):
    made = make_dvs_gesture(tmp_path)
    train, test = neuromorphic.dvs_gesture_dataset(
        tmp_path, 2, 8, 4, download=False, num_workers=0, size=(32, 32)
    )
    x, y = next(iter(test))
    assert x.shape == (3, 4, 2, 32, 32)
    assert y.tolist() == [label for label, _ in made["ibmGestureTest"]]
    for i, (_, ev) in enumerate(made["ibmGestureTest"]):
        expected = np.zeros((2, 32, 32), dtype=np.float32)
        np.add.at(expected, (ev[:, 2], ev[:, 1] * 32 // 128, ev[:, 0] * 32 // 128), 1)
        assert torch.equal(x[i].sum(0), torch.from_numpy(expected))
        assert x[i].sum(dim=(1, 2, 3)).tolist() == _bin_counts(len(ev), 4)
    assert len(train.dataset) == 6


def test_cifar10_dvs_from_aedat4_files_with_the_fixed_split(tmp_path):
    dv = pytest.importorskip("dv_processing")
    pytest.importorskip("aedat")
    rng = np.random.default_rng(3)
    counts = {}
    for cls in ("airplane", "cat"):
        folder = tmp_path / "CIFAR10DVS" / cls
        folder.mkdir(parents=True)
        for i in range(10):  # 10 files per class: 9 train, 1 test
            n = int(rng.integers(30, 90))
            writer = dv.io.MonoCameraWriter(
                str(folder / f"cifar10_{cls}_{i}.aedat4"),
                dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_sample", (128, 128)),
            )
            store = dv.EventStore()
            for k in range(n):
                store.push_back(1000 + 10 * k, int(rng.integers(128)), int(rng.integers(128)),
                                bool(k % 2))  # fmt: skip
            writer.writeEvents(store)
            del writer  # closes the file
            counts[(cls, i)] = n
    train, test = neuromorphic.cifar10_dvs_dataset(
        tmp_path, 3, 8, 5, download=False, num_workers=0, size=(48, 48)
    )
    assert len(train.dataset) == 18 and len(test.dataset) == 2
    x, y = next(iter(test))
    assert x.shape == (2, 5, 2, 48, 48)
    # the test files are the last of each class in sorted order: cifar10_<cls>_9
    assert y.tolist() == [0, 3]  # tonic's class numbers: airplane 0, cat 3
    assert x[0].sum().item() == counts[("airplane", 9)]
    assert x[1].sum().item() == counts[("cat", 9)]


def test_fixed_split_is_per_class_and_order_based():
    targets = [0] * 10 + [1] * 20 + [2] * 3
    train, test = neuromorphic.fixed_split(targets)
    assert test == [9, 28, 29, 32] and len(train) == 29
    assert neuromorphic.fixed_split(targets) == (train, test)  # the same every time


# ---- the training command on each synthetic dataset ------------------------------------


@pytest.mark.parametrize(
    "dataset,make,extra",
    [
        ("nmnist", lambda root: make_nmnist(root, per_split=(8, 4)), []),
        ("dvsgesture", make_dvs_gesture, ["--size", "32", "--split-by", "time"]),
        ("shd", make_shd, ["--model", "srnn", "--T", "8"]),
        ("shd", make_shd, ["--model", "srnn", "--T", "8", "--neuron", "alif", "--beta", "0.5"]),
        ("shd", make_shd, ["--model", "smlp", "--T", "8", "--neuron", "cubalif",
                           "--tau-syn", "3", "--reset", "soft"]),
    ],
)
def test_training_command_on_event_data(tmp_path, dataset, make, extra):
    import json

    from snetx.train import main

    make(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--dataset", dataset, "--data-dir", str(tmp_path / "data"), "--no-download"]
    args += ["--batch-size", "2", "--epochs", "2", "--quiet", "--no-plots", "--workers", "0"]
    assert main([*args, *extra, "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in records)
    config = json.loads((out / "config.json").read_text())
    assert config["T"] == (8 if dataset == "shd" else {"nmnist": 10, "dvsgesture": 16}[dataset])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["firing_rates"]  # the monitor found the neurons
    # resume continues on the cached frames
    assert main([*args, *extra, "--out", str(out), "--resume", "--epochs", "3"]) == 0


def test_training_command_vggsnn_on_cifar10_dvs(tmp_path):
    pytest.importorskip("dv_processing")
    pytest.importorskip("aedat")
    from fake_data import make_cifar10_dvs
    from snetx.train import main

    make_cifar10_dvs(tmp_path / "data")
    args = ["--dataset", "cifar10dvs", "--model", "vggsnn", "--size", "16", "--T", "2"]
    args += ["--data-dir", str(tmp_path / "data"), "--no-download", "--batch-size", "4"]
    args += ["--epochs", "1", "--quiet", "--no-plots", "--workers", "0"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--dataset", "shd", "--model", "scnn"], "scnn takes"),
        (["--dataset", "nmnist", "--model", "vggsnn"], "vggsnn takes event frames with H, W"),
        (["--dataset", "digits", "--size", "16"], "--size applies to event-camera datasets"),
        (["--dataset", "nmnist", "--split-by", "count"], "invalid choice: 'count'"),
    ],
)
def test_event_options_are_checked(tmp_path, capsys, argv, expected):
    from snetx.train import main

    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_srnn_recipe_trains_alif_on_shd_format_files(tmp_path):
    """The SHD recipe (recurrent ALIF, Yin et al. 2021) on HDF5 files written by h5py in
    SHD's layout: the neurons are ALIF inside Recurrent layers, and a few steps on a fixed
    batch lower the loss."""
    import json

    import torch
    from snetx.snn import layer, neuron
    from snetx.train import main

    make_shd(tmp_path / "data", n=(16, 4))
    out = tmp_path / "run"
    argv = ["--recipe", "srnn-shd-alif", "--T", "20", "--epochs", "3", "--batch-size", "8"]
    argv += ["--data-dir", str(tmp_path / "data"), "--no-download", "--quiet", "--no-plots"]
    argv += ["--workers", "0", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["neuron"], config["tau_adapt"], config["model"]) == ("alif", 200.0, "srnn")
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert any(k.endswith("rec.0.weight") for k in ckpt["model"])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) for r in records)
    # the model the recipe builds: ALIF in Recurrent layers
    from snetx.models.smlp import SpikingMLP

    net = SpikingMLP(700, 20, hidden=(32, 32), recurrent=True, neuron=neuron.ALIF)
    assert all(isinstance(r, layer.Recurrent) for r in net.rec)
    torch.manual_seed(0)
    x = (torch.rand(4, 20, 700) < 0.05).float()
    y = torch.arange(4) % 20
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(net(x).mean(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
