import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fake_data import make_cifar, make_mnist
from fake_data import make_nmnist as make_nmnist_events
from snetx.dataset.ddp import vision as ddp_vision
from snetx.models import svggnet
from snetx.snn.algorithm import TETLoss
from torch import nn


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        train, test = ddp_vision.digits_dataset(None, 16, 50, num_workers=0, seed=3)
        epochs = []
        for _ in range(2):
            it = iter(train)  # each pass advances the sampler's epoch by itself
            epochs.append(list(train.sampler))
            next(it)
        test_idx = list(test.sampler)
        n_test = sum(len(y) for _, y in test)

        # the default-transforms path of every dataset, on files in the real formats
        import torchvision

        torchvision.datasets.cifar.check_integrity = lambda *a, **k: True  # md5 of real files
        shapes = {}
        for name in ("mnist_dataset", "Fmnist_dataset", "cifar10_dataset", "cifar100_dataset"):
            tr, te = getattr(ddp_vision, name)(out_dir, 4, 4, download=False, num_workers=0)
            shapes[name] = (tuple(next(iter(tr))[0].shape), tuple(next(iter(te))[0].shape))

        # the neuromorphic loaders over the same samplers (N-MNIST files in the real format)
        from snetx.dataset.ddp import neuromorphic as ddp_events

        ev_train, ev_test = ddp_events.nmnist_dataset(
            os.path.join(out_dir, "events"), 2, 2, 3, num_workers=0, download=False
        )
        events = {
            "train": list(ev_train.sampler),
            "test": list(ev_test.sampler),
            "shape": tuple(next(iter(ev_train))[0].shape),
        }

        # a small spiking VGG under DDP: one training step
        torch.manual_seed(0)  # same initial weights on both ranks
        net = svggnet.VGG(
            [8, "M", 16, "M"],
            nn.BatchNorm2d,
            num_classes=10,
            in_channels=1,
            head="compact",
            dropout=0.0,
        )
        model = nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = next(iter(train))
        x = x.unsqueeze(1).repeat(1, 2, 1, 1, 1)
        loss = TETLoss(nn.CrossEntropyLoss(), y, model(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.save(
            {
                "epochs": epochs,
                "test_idx": test_idx,
                "n_test": n_test,
                "shapes": shapes,
                "state": {k: v.detach().clone() for k, v in net.named_parameters()},
                "batch": y,
                "events": events,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_two_process_gloo(tmp_path):
    world = 2
    make_mnist(tmp_path, "MNIST")
    make_mnist(tmp_path, "FashionMNIST")
    make_cifar(tmp_path)
    make_cifar(tmp_path, hundred=True)
    make_nmnist_events(tmp_path / "events", per_split=(8, 5))
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world)
    r = [torch.load(tmp_path / f"rank{i}.pt") for i in range(world)]
    n_train = 1437
    for epoch in range(2):
        a, b = r[0]["epochs"][epoch], r[1]["epochs"][epoch]
        assert len(a) == len(b) == n_train // world
        assert not set(a) & set(b)  # disjoint
        assert len(set(a) | set(b)) == n_train - n_train % world  # cover (one dropped)
    assert r[0]["epochs"][0] != r[0]["epochs"][1]  # reshuffled between epochs
    t0, t1 = r[0]["test_idx"], r[1]["test_idx"]
    assert sorted(t0 + t1) == list(range(360)) and r[0]["n_test"] + r[1]["n_test"] == 360
    assert not torch.equal(r[0]["batch"], r[1]["batch"])  # ranks saw different data
    assert r[0]["shapes"]["mnist_dataset"] == ((4, 1, 28, 28), (4, 1, 28, 28))
    assert r[1]["shapes"]["cifar100_dataset"] == ((4, 3, 32, 32), (4, 3, 32, 32))
    assert r[0]["shapes"]["Fmnist_dataset"][0] == (4, 1, 28, 28)
    assert r[1]["shapes"]["cifar10_dataset"][1] == (4, 3, 32, 32)
    e0, e1 = r[0]["events"], r[1]["events"]
    assert sorted(e0["train"] + e1["train"]) == list(range(8)) and not set(e0["train"]) & set(
        e1["train"]
    )
    assert sorted(e0["test"] + e1["test"]) == list(range(5))  # every test sample once
    assert e0["shape"] == (2, 3, 2, 34, 34)
    for k, v in r[0]["state"].items():
        torch.testing.assert_close(v, r[1]["state"][k], rtol=0, atol=0, msg=k)


def test_requires_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        ddp_vision.digits_dataset(None, 16, 16)
