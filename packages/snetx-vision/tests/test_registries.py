"""The registries are where a dataset, a model option or a neuron is added, in one place:
the command line, its checks, the builders and the loaders pick the entry up with no other
edit. Each test adds a real entry (monkeypatched registry) and uses it end to end."""

import dataclasses
import functools
from types import MappingProxyType

import pytest
import torch
from snetx.dataset import registry as datasets
from snetx.models import registry as models
from snetx.snn import neuron as snn_neuron
from snetx.train import cli, main, neurons

FAST = ["--quiet", "--no-plots", "--seed", "0", "--epochs", "1"]


def test_a_model_option_is_one_entry(monkeypatch, tmp_path, capsys):
    """A new option (width) taken by a new model (a wider scnn): flag, default, refusal
    for the models that do not take it, and the builder keyword."""
    from snetx.models.scnn import SpikingCNN

    def build(num_classes, in_channels, neuron, size=None, width=None):
        return SpikingCNN(in_channels, num_classes, width=width, neuron=neuron)

    option = models.ModelOption("width", 8, "channels of the first block", type=int)
    spec = models.ModelSpec("wide_scnn", build, 8, "8x8 or larger", options=("width",),
                            default_input=(1, (8, 8)))  # fmt: skip
    monkeypatch.setattr(models, "OPTIONS", MappingProxyType({**models.OPTIONS, "width": option}))
    monkeypatch.setattr(models, "MODELS", MappingProxyType({**models.MODELS, "wide_scnn": spec}))
    out = tmp_path / "run"
    assert main([*FAST, "--model", "wide_scnn", "--width", "4", "--out", str(out)]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["args"]["width"] == 4 and ckpt["model"]["features.0.module.0.weight"].shape[0] == 4
    args = cli.parse([*FAST, "--model", "wide_scnn", "--out", str(tmp_path / "d")])
    assert args.width == 8  # the option's default for a model that takes it
    assert main([*FAST, "--model", "scnn", "--width", "4", "--out", str(tmp_path / "x")]) == 2
    assert "--width applies to wide_scnn, not scnn" in capsys.readouterr().err
    assert spec.builder()(width=2).features[0].module[0].out_channels == 2


def test_a_neuron_is_one_entry(monkeypatch, tmp_path, capsys):
    """A new --neuron choice (IF: a LIF without leak) with its own check."""

    def check(args):
        if args.tau != 1:
            return f"--neuron if has no leak: --tau must be 1, got {args.tau}"
        return None

    choice = neurons.NeuronChoice("if", "IF", "integrate-and-fire, no leak", check)
    monkeypatch.setattr(neurons, "NEURONS", MappingProxyType({**neurons.NEURONS, "if": choice}))
    monkeypatch.setattr(snn_neuron, "IF", functools.partial(snn_neuron.LIF, tau=1.0),
                        raising=False)  # fmt: skip  (IF takes tau from the factory here)
    assert main([*FAST, "--neuron", "if", "--out", str(tmp_path / "a")]) == 2
    assert "--tau must be 1, got 2.0" in capsys.readouterr().err
    out = tmp_path / "b"
    assert main([*FAST, "--neuron", "if", "--tau", "1", "--out", str(out)]) == 0
    assert "if: integrate-and-fire" in " ".join(cli.build_parser().format_help().split())


def test_a_dataset_is_one_entry(monkeypatch, tmp_path):
    """digits under another name, with other defaults: snetx-train's choices, defaults
    and loaders come from the entry."""
    spec = dataclasses.replace(datasets.get("digits"), name="digits2", default_epochs=2,
                               default_T=3)  # fmt: skip
    extended = MappingProxyType({**datasets.DATASETS, "digits2": spec})
    monkeypatch.setattr(datasets, "DATASETS", extended)
    out = tmp_path / "run"
    assert main(["--quiet", "--no-plots", "--dataset", "digits2", "--out", str(out)]) == 0
    args = torch.load(out / "checkpoint.pt", weights_only=True)["args"]
    assert (args["epochs"], args["T"], args["model"]) == (2, 3, "scnn")
    from snetx.dataset.loaders import make_loaders

    train, test = make_loaders("digits2", None, 64, 90, num_workers=0, seed=0)
    assert len(test.dataset) == 360


def test_the_loader_factory_refuses_what_a_spec_does_not_have(tmp_path):
    from snetx.dataset.loaders import make_loaders

    with pytest.raises(ValueError, match="digits has no validation split"):
        make_loaders("digits", None, 8, 8, validation=True)
    with pytest.raises(ValueError, match="T must be an int >= 1"):
        make_loaders("nmnist", tmp_path, 8, 8, T=0)
