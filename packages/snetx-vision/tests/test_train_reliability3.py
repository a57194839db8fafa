"""snetx-train, reliability round 3: no run destroyed by a fresh one, checkpoints of
earlier versions resume, malformed checkpoints and planted links refused in one line,
signals stop cleanly, and options that cannot work are refused before anything runs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_data import make_mnist
from snetx.train import main
from snetx.train.export import main as export_main

FAST = ["--dataset", "digits", "--batch-size", "64", "--quiet", "--seed", "0", "--no-plots"]
FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"


def one_line_error(capsys, *expected):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*FAST, "--epochs", "1", "--out", str(out)]) == 0
    return out


# ---- 1. a fresh run never destroys an earlier one ----------------------------------------


def test_runs_without_out_take_numbered_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*FAST, "--epochs", "1"]) == 0
    first = (tmp_path / "runs/digits-scnn/checkpoint.pt").read_bytes()
    assert main([*FAST, "--epochs", "1", "--T", "2"]) == 0  # the README's job, run again
    assert (tmp_path / "runs/digits-scnn/checkpoint.pt").read_bytes() == first
    second = json.loads((tmp_path / "runs/digits-scnn-2/config.json").read_text())
    assert second["T"] == 2 and second["out"] == os.path.join("runs", "digits-scnn-2")
    assert "runs/digits-scnn-2" in capsys.readouterr().out  # the closing line names it
    # --resume without --out continues the newest run
    assert main([*FAST, "--epochs", "2", "--T", "2", "--resume"]) == 0
    assert len((tmp_path / "runs/digits-scnn-2/metrics.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "runs/digits-scnn/checkpoint.pt").read_bytes() == first


def test_an_explicit_out_holding_a_run_is_refused(finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([*FAST, "--epochs", "1", "--T", "2", "--out", str(out)]) == 2
    one_line_error(capsys, "already holds a run", "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main([*FAST, "--out", str(out), "--resume", "--overwrite"]) == 2
    one_line_error(capsys, "choose one")


def test_overwrite_replaces_the_run_only_once_the_new_one_has_started(finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "notes.txt").write_text("mine")  # not a run file: never removed
    old = (out / "checkpoint.pt").read_bytes()
    # a new run that cannot start (no MNIST files, no download) loses nothing
    argv = ["--dataset", "mnist", "--data-dir", str(tmp_path / "none"), "--no-download"]
    assert main([*FAST[2:], *argv, "--epochs", "1", "--out", str(out), "--overwrite"]) == 2
    assert (out / "checkpoint.pt").read_bytes() == old
    capsys.readouterr()
    assert main([*FAST, "--epochs", "1", "--T", "2", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["T"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (out / "checkpoint-prev.pt").exists() or (out / "checkpoint.pt").read_bytes() != old
    assert (out / "notes.txt").read_text() == "mine"


def test_a_finished_run_leaves_no_lock_file(finished):
    assert not (finished / ".lock").exists()


# ---- 8. checkpoints of earlier versions resume ------------------------------------------


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.pt")))
def test_checkpoints_of_earlier_versions_resume(fixture, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(FIXTURES / fixture, out / "checkpoint.pt")
    assert main([*FAST, "--epochs", "2", "--out", str(out), "--resume"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["test_acc"] > 0.5


# ---- 12. malformed checkpoints: one line naming the field -------------------------------


def _malformed(ckpt, field):
    if field == "args a list":
        ckpt["args"] = list(ckpt["args"].items())
    elif field == "rng size":
        ckpt["rng"]["torch"] = ckpt["rng"]["torch"][:100]
    elif field == "no rng.numpy":
        del ckpt["rng"]["numpy"]
    elif field == "history a string":
        ckpt["history"] = "epoch 1"
    elif field == "no scaler":
        del ckpt["scaler"]
    elif field == "loader generator":
        ckpt["loader"]["generator"] = torch.zeros(3, dtype=torch.uint8)
    elif field == "phase":
        ckpt["phase"] = "bogus"
    elif field == "step":
        ckpt["step"] = 999
    return ckpt


@pytest.mark.parametrize(
    "field,named",
    [
        ("args a list", "'args'"),
        ("rng size", "'rng.torch'"),
        ("no rng.numpy", "'rng.numpy'"),
        ("history a string", "'history'"),
        ("no scaler", "'scaler'"),
        ("loader generator", "'loader.generator'"),
        ("phase", "'phase'"),
        ("step", "'step'"),
    ],
)
def test_malformed_checkpoint_is_refused_naming_the_field(finished, tmp_path, capsys, field, named):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "checkpoint-prev.pt").unlink()
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    torch.save(_malformed(ckpt, field), out / "checkpoint.pt")
    before = (out / "metrics.jsonl").read_text()
    assert main([*FAST, "--epochs", "3", "--out", str(out), "--resume"]) == 2
    one_line_error(capsys, named)
    assert (out / "metrics.jsonl").read_text() == before  # no fake epoch recorded


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda c: c.update(args=list(c["args"].items())), "field 'args'"),
        (lambda c: c["args"].update(model="nosuchnet"), "unknown model 'nosuchnet'"),
        (
            lambda c: c["model"].update({k: v.reshape(-1)[:1] for k, v in c["model"].items()}),
            "do not fit",
        ),
    ],
)
def test_export_of_a_malformed_checkpoint_exits_2(finished, tmp_path, capsys, change, expected):
    pytest.importorskip("nir")
    ckpt = torch.load(finished / "checkpoint.pt", weights_only=True)
    change(ckpt)
    torch.save(ckpt, tmp_path / "bad.pt")
    code = export_main(["--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "m.nir")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m.nir").exists()


# ---- 9. planted links --------------------------------------------------------------------


def test_a_planted_lock_link_is_refused_and_its_target_kept(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    assert main([*FAST, "--epochs", "1", "--out", str(out)]) == 2
    one_line_error(capsys, "symbolic link")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("name", ["metrics.jsonl", "config.json", "summary.json"])
def test_planted_output_links_are_never_written_through(finished, tmp_path, capsys, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / name).unlink()
    (out / name).symlink_to(victim)
    code = main([*FAST, "--epochs", "2", "--out", str(out), "--resume"])
    assert code == 2
    one_line_error(capsys, "symbolic link", name)
    assert victim.read_text() == "precious"


# ---- 13. --workers on resume with random augmentation -----------------------------------


def test_resume_with_other_workers_and_random_augmentation_is_refused(tmp_path, capsys):
    make_mnist(tmp_path / "data", n_train=32, n_test=8)
    args = [
        *FAST,
        *("--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download"),
        *("--batch-size", "16", "--epochs", "1", "--out", str(tmp_path / "run")),
    ]  # MNIST's default train transform is a random affine
    assert main([*args, "--workers", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--workers", "0", "--epochs", "2", "--resume"]) == 2
    one_line_error(capsys, "--workers 1 -> 0", "random augmentation")
    assert main([*args, "--workers", "0", "--augment", "none", "--resume"]) == 2  # still refused
    capsys.readouterr()


# ---- 14 and the low ones: refused before anything runs ----------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--dataset", "cifar10dvs", "--size", "100000"], "--size must be in [1, 128]"),
        (["--dataset", "nmnist", "--size", "35"], "--size must be in [1, 34]"),
        (["--dataset", "cifar10dvs", "--T", "1000000"], "GiB, more than half"),
        (["--out", ""], "--out must name a folder"),
        (["--out", "  "], "--out must name a folder"),
        (["--split-by", "time"], "--split-by applies to the event and spike datasets"),
        (["--cache-dir", "x"], "--cache-dir applies to the event and spike datasets"),
        (
            ["--recipe", "tet-cifar10dvs-vggsnn", "--dataset", "digits"],
            "--recipe tet-cifar10dvs-vggsnn sets",
        ),
    ],
)
def test_options_that_cannot_work_exit_2_in_one_line(tmp_path, capsys, argv, expected):
    out = [] if "--out" in argv else ["--out", str(tmp_path / "o")]
    assert main([*FAST, *argv, *out]) == 2
    err = one_line_error(capsys, expected)
    if "--recipe" in argv:  # the flag the user typed is not blamed as if typed
        assert "--dataset digits" not in err.split("(--recipe")[1]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value,expected", [("bogus", "SNETX_CPU_KERNEL must be one of")])
def test_a_bad_cpu_kernel_variable_is_one_line(tmp_path, capsys, monkeypatch, value, expected):
    from snetx.snn import _host_kernel

    monkeypatch.setitem(_host_kernel._state, "mode", None)
    monkeypatch.setenv("SNETX_CPU_KERNEL", value)
    assert main([*FAST, "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, expected)


def test_host_kernel_demanded_but_unbuildable_is_one_line(tmp_path):
    env = dict(os.environ, SNETX_CPU_KERNEL="host", CXX=str(tmp_path / "no-compiler"))
    env["SNETX_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "snetx.train", *FAST, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "SNETX_CPU_KERNEL=host" in err, err


# ---- signals --------------------------------------------------------------------------


def test_sigterm_stops_like_ctrl_c_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ)
    env.pop("SNETX_TRAIN_INTERRUPT_AT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "snetx.train", *FAST, "--epochs", "200", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.time() + 240
    while not (out / "metrics.jsonl").exists():  # training has started
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err and "Traceback" not in err
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] < 200 and not (out / ".lock").exists()


def test_a_signal_before_training_or_a_second_one_stops_at_once():
    from snetx.train.stop import Interrupted, StopRequest

    stop = StopRequest()
    with pytest.raises(Interrupted, match="before training started; nothing saved"):
        stop._handler(signal.SIGINT, None)  # building data/model, filling the frame cache
    stop.armed = True
    stop._handler(signal.SIGTERM, None)
    assert stop.requested and stop.code == 143
    with pytest.raises(Interrupted, match="second Ctrl-C") as e:
        stop._handler(signal.SIGINT, None)
    assert e.value.code == 130


def test_interrupted_is_one_line_with_its_exit_code(tmp_path, capsys, monkeypatch):
    from snetx.train import trainer
    from snetx.train.stop import Interrupted

    def fit(self):
        raise Interrupted("stopped at once by a second Ctrl-C; the last checkpoint is kept", 130)

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    assert main([*FAST, "--out", str(tmp_path / "o")]) == 130
    one_line_error(capsys, "second Ctrl-C")
    assert not (tmp_path / "o" / ".lock").exists()
