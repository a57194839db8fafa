"""snetx-export: a trained snetx-train checkpoint to a NIR file and back, one-line errors."""

from argparse import Namespace

import pytest
import torch
from snetx.snn import neuron
from snetx.snn.algorithm import Tosnn

pytest.importorskip("nir")
pytest.importorskip("h5py")
from fake_data import make_shd  # noqa: E402
from snetx import nir as snir  # noqa: E402
from snetx.train import build, checkpoint, main  # noqa: E402
from snetx.train.export import main as export  # noqa: E402

RUN = ["--epochs", "1", "--quiet", "--no-plots", "--workers", "0", "--no-download"]


def test_a_trained_smlp_exports_and_loads_back_with_the_same_spikes(tmp_path, capsys):
    make_shd(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["--dataset", "shd", "--model", "smlp", "--T", "6", "--batch-size", "4", *RUN]
    assert main([*argv, "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    path = tmp_path / "model.nir"
    assert export(["--checkpoint", str(out / "checkpoint.pt"), "--out", str(path)]) == 0
    assert "nodes (Affine, Input, LIF, Output)" in capsys.readouterr().out
    # the checkpoint's own model, rebuilt the way snetx-train builds it
    ckpt = checkpoint.read(out / "checkpoint.pt")
    from argparse import Namespace

    args = Namespace(**ckpt["args"])
    model = build.model(args, args.alpha)
    model.load_state_dict(ckpt["model"])
    model.eval()
    x = (torch.rand(3, 6, 700) < 0.3).float()
    loaded = snir.load(path)
    hidden = torch.nn.Sequential(model.fc[0], model.neurons[0])  # the first layer's spikes
    want = model(x)
    torch.testing.assert_close(loaded(x), want, rtol=1e-5, atol=1e-5)  # real read-out
    assert hidden(x).sum() > 0


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--checkpoint", "nowhere.pt", "--out", "m.nir"], "--checkpoint nowhere.pt: missing"),
        (["--out", "m.nir"], "the following arguments are required: --checkpoint"),
        (["--checkpoint", "c.pt", "--out", "m.nir", "--dt", "0"], "--dt must be a finite"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_the_main_jobs_model_exports_and_runs_as_trained(tmp_path, capsys):
    """The default digits model (scnn, average pools) is exportable: the graph runs to the
    same outputs as the trained model on the test images."""
    from snetx.dataset import vision
    from snetx.train.checkpoint import read

    out = tmp_path / "run"
    assert main(["--dataset", "digits", "--T", "2", *RUN, "--out", str(out)]) == 0
    capsys.readouterr()
    nir_file = tmp_path / "digits.nir"
    assert export(["--checkpoint", str(out / "checkpoint.pt"), "--out", str(nir_file)]) == 0
    ckpt = read(out / "checkpoint.pt")
    args = Namespace(**ckpt["args"])
    model = build.model(args, args.alpha).eval()
    model.load_state_dict(ckpt["model"])
    _, test = vision.digits_dataset(None, 64, 90, num_workers=0)
    images, _ = next(iter(test))
    x = images[:, None].repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(snir.load(nir_file)(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_model_nir_cannot_represent_is_named(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["--dataset", "digits", "--T", "2", *RUN, "--out", str(out)]) == 0
    capsys.readouterr()
    with_max_pool = torch.nn.Sequential(Tosnn(torch.nn.MaxPool2d(2)), neuron.LIF())
    monkeypatch.setattr(build, "model", lambda args, alpha: with_max_pool)  # as if registered
    monkeypatch.setattr(with_max_pool, "load_state_dict", lambda state: None)
    code = export(["--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be exported" in err and "MaxPool2d" in err


@pytest.mark.parametrize("name", ["resnet19", "sew_resnet18", "ms_resnet18", "vggsnn"])
def test_zoo_models_round_trip_through_nir(name):
    import warnings

    from snetx.models import registry

    torch.manual_seed(0)
    events = name == "vggsnn"
    size, ch = ((48, 48), 2) if events else ((32, 32), 3)
    net = registry.get(name).build(num_classes=10, in_channels=ch, neuron=None, size=size).eval()
    x = torch.rand(2, 2, ch, *size) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identity shortcuts keep r (said in a warning)
        graph = snir.export(net, x)
    assert not any("BatchNorm" in type(n).__name__ for n in graph.nodes.values())
    assert torch.equal(snir.load(graph)(x), net(x))


def test_sew_and_has_no_nir_node():
    from snetx.models.sew_resnet import sew_resnet18

    net = sew_resnet18(num_classes=10, stem="cifar", connect="AND").eval()
    with pytest.raises(snir.NIRExportError, match="torch operation 'mul'"):
        snir.export(net, torch.rand(1, 1, 3, 32, 32))
