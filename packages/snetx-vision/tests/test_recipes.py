"""snetx-train --recipe / --list-recipes / --augment / --connect: expansion, overrides,
errors, and a few training steps of every recipe on synthetic files."""

import json

import pytest
import torch
from fake_data import make_cifar, make_cifar10_dvs
from snetx.dataset.augment import FlipRoll
from snetx.train import main, recipes
from snetx.train.cli import parse


@pytest.mark.parametrize("name", recipes.names())
def test_a_recipe_expands_to_its_documented_settings(name, tmp_path):
    recipe = recipes.get(name)
    args = parse(["--recipe", name, "--device", "cpu", "--out", str(tmp_path / "o")])
    for key, value in recipe.settings.items():
        assert getattr(args, key) == value, key
    assert recipe.reported and recipe.source and recipe.paper
    assert recipe.measured == "not yet measured"  # no full run has been done yet


def test_flags_given_override_the_recipe(tmp_path):
    args = parse(
        ["--recipe", "sew-cifar10dvs", "--T", "2", "--epochs", "1", "--no-amp", "--lr", "0.5"]
        + ["--device", "cpu", "--out", str(tmp_path / "o")]
    )
    assert (args.T, args.epochs, args.amp, args.lr) == (2, 1, False, 0.5)
    assert (args.model, args.connect, args.neuron) == ("sew_wide7b", "ADD", "plif")


def test_list_recipes_prints_every_recipe_with_its_source(capsys):
    assert main(["--list-recipes"]) == 0
    out = capsys.readouterr().out
    for r in recipes.RECIPES.values():
        assert r.name in out and r.source in out and r.reported in out
    assert out.count("measured: not yet measured") == len(recipes.RECIPES)


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--recipe", "tet-mnist"], "unknown recipe 'tet-mnist': choose one of tet-cifar10"),
        (["--model", "resnet19", "--connect", "AND"], "--connect applies to sew_resnet18"),
        (["--augment", "autoaugment"], "--augment autoaugment does not apply to digits"),
        (["--dataset", "cifar10", "--augment", "flip-roll"], "choose one of default, none, auto"),
        (["--model", "sew_resnet18", "--connect", "OR"], "invalid choice: 'OR'"),
        (["--dataset", "cifar10dvs", "--model", "sew_wide7b"], "sew_wide7b takes square event"),
    ],
)
def test_bad_recipe_options_are_one_line_exit_2(tmp_path, capsys, argv, expected):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_flip_roll_flips_or_not_and_shifts_every_frame_alike():
    x = torch.rand(4, 2, 9, 9)
    aug = FlipRoll(shift=2, generator=torch.Generator().manual_seed(0))
    flips = set()
    for _ in range(40):
        y = aug(x)
        found = [
            (f, dy, dx)
            for f in (False, True)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(y, (x.flip(-1) if f else x).roll((dy, dx), dims=(-2, -1)))
        ]
        assert found, "not a flip and a roll of the whole clip"
        flips.add(found[0][0])
    assert flips == {False, True}


FAST = ["--epochs", "1", "--T", "1", "--quiet", "--no-plots", "--workers", "0", "--no-download"]


@pytest.mark.parametrize("name", ["tet-cifar10-resnet19", "tet-cifar100-resnet19"])
def test_tet_cifar_recipes_train_on_synthetic_cifar(name, tmp_path, cifar_md5_ok):
    make_cifar(tmp_path / "data", hundred="100" in name)
    out = tmp_path / "run"
    argv = ["--recipe", name, *FAST, "--batch-size", "10", "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["augment"], config["loss"]) == (
        "resnet19",
        "autoaugment",
        "tet",
    )
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["train_loss"] == record["train_loss"]  # finite, recorded


@pytest.mark.parametrize("name,size", [("tet-cifar10dvs-vggsnn", "16"), ("sew-cifar10dvs", "128")])
def test_dvs_recipes_train_on_synthetic_aedat4_files(name, size, tmp_path):
    pytest.importorskip("dv_processing")
    pytest.importorskip("aedat")
    make_cifar10_dvs(tmp_path / "data")
    argv = ["--recipe", name, *FAST, "--T", "2", "--size", size, "--batch-size", "6", "--no-amp"]
    out = tmp_path / "run"
    argv += ["--data-dir", str(tmp_path / "data"), "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["recipe"] == name


def test_checkpoints_written_before_these_options_still_resume():
    from snetx.train.cli import parser_defaults
    from snetx.train.config import differences

    saved = {"lr": 0.1, "model": "scnn"}  # an older run's configuration
    new = {**saved, "augment": "default", "connect": None, "recipe": None, "list_recipes": False}
    new.update(neuron="lif", reset="hard", split_by="number", size=None)
    assert differences(saved, new, parser_defaults()) == []
    new["augment"] = "none"
    assert differences(saved, new, parser_defaults()) == ["--augment default -> none"]


def test_a_transformer_recipe_trains_on_synthetic_cifar(tmp_path, cifar_md5_ok):
    """qkformer-cifar10 (the smallest CIFAR transformer) through snetx-train: one epoch
    at T = 1 on a small CIFAR-10-format folder, with the energy report in the summary."""
    make_cifar(tmp_path / "data", per_batch=4, n_test=4)
    out = tmp_path / "run"
    argv = ["--recipe", "qkformer-cifar10", *FAST, "--batch-size", "10", "--no-amp"]
    argv += ["--data-dir", str(tmp_path / "data"), "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["lr"], config["recipe"]) == (
        "qkformer_4_384", 1e-3, "qkformer-cifar10"
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["firing_rates"]
