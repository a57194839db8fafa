import math

import numpy as np
import pytest
import torch
from fake_data import make_cifar, make_mnist
from snetx.dataset import DatasetNotFoundError, registry, vision
from snetx.dataset._common import Cutout

MEAN_STD = {n: (s.mean, s.std) for n, s in registry.DATASETS.items()}
from torchvision import transforms as T


@pytest.mark.parametrize(
    "fn,folder,mean_std",
    [
        (vision.mnist_dataset, "MNIST", MEAN_STD["mnist"]),
        (vision.Fmnist_dataset, "FashionMNIST", MEAN_STD["fmnist"]),
    ],
)
def test_mnist_like_loaders(tmp_path, fn, folder, mean_std):
    data = make_mnist(tmp_path, folder, n_train=50, n_test=20)
    train, test = fn(tmp_path, 8, 6, download=False, num_workers=0)
    assert len(train) == 50 // 8 and len(test) == math.ceil(20 / 6)
    x, y = next(iter(test))
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    images, labels = data["t10k"]
    (mean,), (std,) = mean_std
    expected = (torch.tensor(images[:6], dtype=torch.float32) / 255 - mean) / std
    torch.testing.assert_close(x[:, 0], expected)  # test loader: in order, normalized
    assert y.tolist() == labels[:6].tolist()
    xs = torch.cat([b for b, _ in train])
    assert xs.shape[0] == 48  # last partial batch dropped
    # random affine in the default train transform: a train image is not the plain one
    plain = (torch.tensor(data["train"][0], dtype=torch.float32) / 255 - mean) / std
    # the random affine (5 degrees, 5% shifts, nearest pixels) leaves few images unchanged
    unchanged = sum(any(torch.allclose(x, p) for p in plain) for x in xs[:, 0])
    assert unchanged < len(xs) // 2, unchanged


def test_custom_transforms_replace_defaults(tmp_path):
    make_mnist(tmp_path)
    tf = T.Compose([T.ToTensor()])
    train, test = vision.mnist_dataset(
        tmp_path, 10, 10, transforms=[tf, tf], download=False, num_workers=0
    )
    x, _ = next(iter(train))
    assert x.min() >= 0 and x.max() <= 1  # no normalization
    with pytest.raises(ValueError, match="train_transform, test_transform"):
        vision.mnist_dataset(tmp_path, 10, 10, transforms=[tf], download=False)


def test_shuffle_seed_and_order(tmp_path):
    make_mnist(tmp_path, n_train=64)
    tf = [T.ToTensor(), T.ToTensor()]
    a, test = vision.mnist_dataset(tmp_path, 64, 64, tf, download=False, num_workers=0, seed=1)
    b, _ = vision.mnist_dataset(tmp_path, 64, 64, tf, download=False, num_workers=0, seed=1)
    ya, yb = next(iter(a))[1], next(iter(b))[1]
    assert torch.equal(ya, yb)  # same seed, same order
    in_order = torch.tensor([test.dataset.targets.tolist()])
    train_targets = torch.as_tensor(a.dataset.targets)
    assert not torch.equal(ya, train_targets)  # shuffled
    assert sorted(ya.tolist()) == sorted(train_targets.tolist())
    assert torch.equal(torch.cat([y for _, y in test]), in_order[0])


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_loaders(tmp_path, cifar_md5_ok, hundred):
    data = make_cifar(tmp_path, hundred=hundred, per_batch=10, n_test=12)
    fn = vision.cifar100_dataset if hundred else vision.cifar10_dataset
    train, test = fn(tmp_path, 16, 5, download=False, num_workers=0)
    assert len(train.dataset) == 50 and len(test.dataset) == 12
    assert len(train) == 3 and len(test) == 3
    x, y = next(iter(test))
    assert x.shape == (5, 3, 32, 32)
    arr, labels = data["test" if hundred else "test_batch"]
    img = torch.tensor(arr[:5].reshape(5, 3, 32, 32), dtype=torch.float32) / 255
    mean, std = MEAN_STD["cifar100" if hundred else "cifar10"]
    expected = (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert y.tolist() == labels[:5]
    xt, _ = next(iter(train))
    assert xt.shape == (16, 3, 32, 32)


def test_cutout_zeroes_a_square():
    img = torch.ones(3, 32, 32)
    out = Cutout(16, generator=torch.Generator().manual_seed(0))(img)
    zeros = (out == 0).all(dim=0)
    assert 0 < zeros.sum() <= 256 and img.min() == 1  # input untouched
    rows, cols = zeros.any(1).nonzero(), zeros.any(0).nonzero()
    assert zeros.sum() == len(rows) * len(cols)  # a rectangle


@pytest.mark.parametrize(
    "fn,name",
    [
        (vision.mnist_dataset, "MNIST/raw"),
        (vision.cifar10_dataset, "CIFAR10/cifar-10-batches-py"),
        (vision.cifar100_dataset, "CIFAR100/cifar-100-python"),
    ],
)
def test_missing_dataset_error_names_place_files_and_cause(tmp_path, fn, name):
    with pytest.raises(DatasetNotFoundError) as info:
        fn(tmp_path, 8, 8, download=False)
    msg = str(info.value)
    assert str(tmp_path / name) in msg
    assert ("train-images-idx3-ubyte" in msg) or ("test_batch" in msg) or ("meta" in msg)
    assert "Cause: RuntimeError" in msg
    assert info.value.__cause__ is not None


def test_digits_dataset_offline():
    train, test = vision.digits_dataset(None, 32, 100, num_workers=0, seed=0)
    assert len(train.dataset) == 1437 and len(test.dataset) == 360
    assert len(train) == 1437 // 32 and len(test) == 4
    x, y = next(iter(test))
    assert x.shape == (100, 1, 8, 8) and y.dtype == torch.int64
    from sklearn.datasets import load_digits

    d = load_digits()
    # each test image is one of sklearn's images, normalized with the digits mean/std
    (mean,), (std,) = MEAN_STD["digits"]
    raw = x[0, 0] * std + mean
    match = np.abs(d.images / 16.0 - raw.numpy()).reshape(len(d.images), -1).max(1).argmin()
    assert np.allclose(d.images[match] / 16.0, raw.numpy(), atol=1e-5)
    assert d.target[match] == y[0]
    # train and test are disjoint parts
    tr = {tuple(t.flatten().tolist()) for t in train.dataset.data}
    te = {tuple(t.flatten().tolist()) for t in test.dataset.data}
    assert len(tr & te) <= 5  # sklearn digits holds a few duplicate images, nothing more


# ---- damaged files ---------------------------------------------------------------------


def _corrupt(raw, how):
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    if how == "truncated":
        data = images.read_bytes()
        images.write_bytes(data[: len(data) - 100])
        return images, "truncated"
    if how == "bad magic":
        data = bytearray(images.read_bytes())
        data[0] = 7
        images.write_bytes(bytes(data))
        return images, "not an IDX file"
    if how == "wrong dims":
        data = bytearray(labels.read_bytes())
        data[3] = 3
        labels.write_bytes(bytes(data))
        return labels, "3 dims in the header, expected 1"
    if how == "count mismatch":
        from fake_data import write_idx_labels

        write_idx_labels(labels, np.zeros(49, dtype=np.uint8))
        return labels, "holds 50 images but"
    if how == "label out of range":
        data = bytearray(labels.read_bytes())
        data[-1] = 12
        labels.write_bytes(bytes(data))
        return labels, "label 12 is outside 0..9"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["truncated", "bad magic", "wrong dims", "count mismatch", "label out of range"]
)
def test_corrupted_idx_file_is_named_with_its_fault(tmp_path, how):
    from snetx.dataset import DatasetCorruptError

    make_mnist(tmp_path, n_train=50)
    path, fault = _corrupt(tmp_path / "MNIST" / "raw", how)
    with pytest.raises(DatasetCorruptError) as info:
        vision.mnist_dataset(tmp_path, 8, 8, download=False, num_workers=0)
    assert str(path) in str(info.value) and fault in str(info.value)
    assert not isinstance(info.value, DatasetNotFoundError)  # damaged is not missing


def test_training_command_reports_a_corrupted_file_in_one_line(tmp_path, capsys):
    from snetx.train import main

    make_mnist(tmp_path / "data", n_train=50)
    path, _ = _corrupt(tmp_path / "data" / "MNIST" / "raw", "truncated")
    code = main(
        [
            *("--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download"),
            *("--batch-size", "8", "--out", str(tmp_path / "run"), "--quiet"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{path} is corrupted: truncated" in err and "Traceback" not in err


def test_registry_is_the_one_source_of_dataset_facts(tmp_path):
    from snetx.dataset import registry

    images = {"digits", "mnist", "fmnist", "cifar10", "cifar100"}
    events = {"nmnist", "dvsgesture", "cifar10dvs", "ncaltech101", "shd", "ssc"}
    assert set(registry.DATASETS) == images | events
    from snetx.dataset import neuromorphic
    from snetx.dataset.ddp import neuromorphic as ddp_events
    from snetx.dataset.ddp import vision as ddp_vision

    for name, spec in registry.DATASETS.items():
        single, ddp = (
            (vision, ddp_vision) if spec.module == "vision" else (neuromorphic, ddp_events)
        )
        assert callable(getattr(single, spec.loader)) and callable(getattr(ddp, spec.loader)), name
        assert (name in images) == (spec.kind == "image")
        if spec.kind == "image":
            assert len(spec.mean) == len(spec.std) == spec.channels
        assert spec.source or spec.kind == "image", name  # defaults say where they come from
    with pytest.raises(ValueError, match="unknown dataset 'imagenet': choose one of"):
        registry.get("imagenet")
    with pytest.raises(TypeError):
        registry.DATASETS["x"] = None
    # the spec matches what the loader yields
    spec = registry.get("digits")
    train, _ = vision.digits_dataset(None, 16, 16, num_workers=0)
    x, y = next(iter(train))
    assert tuple(x.shape[1:]) == (spec.channels, *spec.size) and len(train.dataset) == 1437
    make_mnist(tmp_path)
    spec = registry.get("mnist")
    train, _ = vision.mnist_dataset(tmp_path, 8, 8, download=False, num_workers=0)
    assert tuple(next(iter(train))[0].shape[1:]) == (spec.channels, *spec.size)
