"""snetx-train under failure: exact resume from every kind of checkpoint, damaged and
malicious files, configuration changes on resume, concurrent runs, a full disk, bad
arguments, a non-finite loss, a rank that stops responding."""

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

FAST = ["--dataset", "digits", "--batch-size", "64", "--quiet", "--seed", "0", "--no-plots"]
RUN = [*FAST, "--epochs", "2", "--evolved-alpha"]
STEPS = 22  # 1437 training images // 64


def metrics(out):
    def strict(name):
        raise ValueError(f"non-strict JSON constant {name}")

    with open(Path(out) / "metrics.jsonl") as f:
        return [json.loads(line, parse_constant=strict) for line in f]


def without_times(records):
    return [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in records]


def model_of(out, name="checkpoint.pt"):
    return torch.load(Path(out) / name, weights_only=True)["model"]


def assert_same_run(a, b):
    """Bit-identical parameters and equal metrics (times aside)."""
    ma, mb = model_of(a), model_of(b)
    assert ma.keys() == mb.keys()
    for k in ma:
        torch.testing.assert_close(mb[k], ma[k], rtol=0, atol=0, msg=k)
    assert without_times(metrics(b)) == without_times(metrics(a))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of RUN."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_hook(monkeypatch):
    monkeypatch.delenv("SNETX_TRAIN_INTERRUPT_AT", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "where,hook,position",
    [
        ("mid-epoch", "30", (1, 8, "train")),
        ("Ctrl-C on step 0 of epoch 2", str(STEPS), (1, 0, "train")),
        ("Ctrl-C on the very first step", "0", (0, 0, "train")),
        ("during evaluation", "evaluate:1", (0, STEPS, "evaluate")),
    ],
)
def test_resume_is_exact_from_every_stop(reference, tmp_path, no_hook, where, hook, position):
    out = tmp_path / "part"
    no_hook.setenv("SNETX_TRAIN_INTERRUPT_AT", hook)
    assert main([*RUN, "--out", str(out)]) == 130
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"], ckpt["phase"]) == position
    no_hook.delenv("SNETX_TRAIN_INTERRUPT_AT")
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert_same_run(reference, out)


def _spawn(args, **kw):
    env = dict(os.environ)
    env.pop("SNETX_TRAIN_INTERRUPT_AT", None)
    return subprocess.Popen(
        [sys.executable, "-m", "snetx.train", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


def test_kill_9_after_the_epoch_checkpoint_resumes_exactly(reference, tmp_path, no_hook):
    out = tmp_path / "killed"
    proc = _spawn([*RUN, "--out", str(out)])
    deadline = time.time() + 240
    latest, prev = out / "checkpoint.pt", out / "checkpoint-prev.pt"

    def saved_twice():  # the second save (end of epoch 1) has replaced checkpoint.pt
        try:
            return prev.exists() and latest.stat().st_ino != prev.stat().st_ino
        except FileNotFoundError:
            return False

    while not saved_twice():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.005)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)  # the end-of-epoch-1 checkpoint
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert_same_run(reference, out)


def test_resume_is_exact_with_random_augmentation_in_loader_workers(tmp_path, no_hook):
    make_mnist(tmp_path / "data", n_train=48, n_test=16)
    args = [
        *FAST,
        *("--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download"),
        *("--batch-size", "16", "--workers", "1", "--epochs", "2"),
    ]  # MNIST's default train transform is a random affine, drawn in the worker
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    no_hook.setenv("SNETX_TRAIN_INTERRUPT_AT", "4")  # epoch 2, batch 1 of 3
    assert main([*args, "--out", str(tmp_path / "part")]) == 130
    no_hook.delenv("SNETX_TRAIN_INTERRUPT_AT")
    assert main([*args, "--out", str(tmp_path / "part"), "--resume"]) == 0
    assert_same_run(tmp_path / "full", tmp_path / "part")


# ---- what a checkpoint may hold --------------------------------------------------------


class Payload:
    """Pickles as a call of os.system: what a planted checkpoint would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused_unrun(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    marker = tmp_path / "pwned"
    ckpt["history"].append(Payload(marker))
    torch.save(ckpt, out / "checkpoint.pt")
    (out / "checkpoint-prev.pt").unlink()
    assert main([*RUN, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert len(err.splitlines()) == 1 and "could run code" in err and "Traceback" not in err


def test_foreign_file_is_not_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"weights": torch.zeros(3)}, out / "checkpoint.pt")
    assert main([*RUN, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a snetx-train checkpoint" in err


def test_damaged_latest_falls_back_to_previous(reference, tmp_path, no_hook):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    prev = torch.load(out / "checkpoint-prev.pt", weights_only=True)
    assert (prev["epoch"], prev["step"]) == (1, 0)  # the one before the last
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match="resuming from the previous checkpoint"):
        assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert_same_run(reference, out)  # epoch 2 trained again, to the same bits


def test_no_usable_checkpoint_names_the_files_tried(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / "checkpoint.pt").write_bytes(b"\0" * 100)
    (out / "checkpoint-prev.pt").write_bytes(b"")
    assert main([*RUN, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checkpoint.pt: unreadable" in err and "checkpoint-prev.pt: unreadable" in err


def test_orphan_temporary_files_are_cleaned(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    orphan = out / ".checkpoint-abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    assert main([*FAST, "--epochs", "1", "--out", str(out)]) == 0
    assert not orphan.exists()


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_full_disk_keeps_the_old_checkpoint(reference, small_disk, capsys):
    size = (reference / "checkpoint.pt").stat().st_size
    # room for two checkpoints and the small files, not for a third one beside them
    opts = f"size={size * 2 + 32 * 1024}"  # the first checkpoint has no Adam state yet
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(small_disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    out = small_disk / "run"
    assert main([*RUN, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "no space left on device" in err[-1] and "previous checkpoint is kept" in err[-1]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)  # epoch 1's checkpoint, intact
    assert not list(out.glob(".checkpoint-*"))


# ---- resuming with other options -------------------------------------------------------


@pytest.mark.parametrize(
    "change,expected",
    [
        (["--T", "8"], "--T 4 -> 8"),
        (["--lr", "0.01"], "--lr 0.003 -> 0.01"),
        (["--batch-size", "32"], "--batch-size 64 -> 32"),
        (["--tau", "3"], "--tau 2.0 -> 3.0"),
        (["--surrogate", "sigmoid"], "--surrogate arctan -> sigmoid"),
    ],
)
def test_resume_refuses_changes_to_what_is_trained(reference, tmp_path, capsys, change, expected):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = (out / "config.json").read_text()
    assert main([*RUN, "--out", str(out), "--resume", *change]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
    assert (out / "config.json").read_text() == before  # nothing recorded


def test_resume_accepts_more_epochs_and_records_them(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    assert main([*RUN, "--out", str(out), "--resume", "--epochs", "3", "--workers", "0"]) == 0
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3]
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 3 and config["workers"] == 0


def test_resume_refuses_fewer_epochs_than_done(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    assert main([*RUN, "--out", str(out), "--resume", "--epochs", "1"]) == 2
    assert "fewer than the 2 epochs already done" in capsys.readouterr().err


# ---- one run per folder ----------------------------------------------------------------


def test_second_run_on_a_locked_folder_exits_2_naming_the_first(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from snetx.train.lock import FolderLock; "
            f"FolderLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main([*FAST, "--epochs", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err
        assert not (out / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main([*FAST, "--epochs", "1", "--out", str(out)]) == 0  # released when it died


# ---- bad arguments and bad training ----------------------------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--lr", "nan"], "--lr must be a finite number > 0"),
        (["--lr", "inf"], "--lr must be a finite number > 0"),
        (["--lr", "-1"], "--lr must be a finite number > 0"),
        (["--lamb", "nan"], "--lamb must be a number in [0, 1]"),
        (["--lamb", "1.5"], "--lamb must be a number in [0, 1]"),
        (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
        (["--workers", "-3"], "--workers must be >= 0"),
        (["--tau", "0.5"], "--tau must be a finite number >= 1"),
        (["--tau", "nan"], "--tau must be a finite number >= 1"),
        (["--alpha", "-1"], "--alpha must be a finite number > 0"),
        (["--alpha", "0"], "--alpha must be a finite number > 0"),
        (["--seed", "-1"], "--seed must be in [0, 2**32 - 1]"),
        (["--device", "foo"], "--device 'foo' is not a device"),
        (["--ddp-timeout", "0"], "--ddp-timeout must be a finite number > 0"),
        (["--batch-size", "5000"], "larger than the training set (1437 samples)"),
        (["--neuron", "plif", "--tau", "1"], "--neuron plif needs --tau > 1"),
        (["--reset", "sideways"], "invalid choice: 'sideways'"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, expected, tmp_path, capsys):
    code = main([*FAST, *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "metrics.jsonl").exists() or "batch-size" in argv


def test_device_that_is_not_here(tmp_path, capsys):
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        pytest.skip("this machine has MPS")
    assert main([*FAST, "--device", "mps", "--out", str(tmp_path / "o")]) == 2
    assert "not available on this machine" in capsys.readouterr().err


def test_out_naming_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main([*FAST, "--out", str(target)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_non_finite_loss_stops_with_the_last_finite_state(tmp_path, capsys):
    out = tmp_path / "run"
    code = main([*FAST, "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "training loss became" in err[-1] and "last finite state" in err[-1]
    for name in ("checkpoint.pt", "checkpoint-prev.pt"):
        if (out / name).exists():
            state = torch.load(out / name, weights_only=True)["model"].values()
            assert all(torch.isfinite(v).all() for v in state if v.is_floating_point()), name
    assert not (out / "summary.json").exists()  # no accuracy reported for a broken run
    metrics(out)  # strict JSON


# ---- DDP: a rank that stops responding -------------------------------------------------


def _children(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _rank_of(pid):
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ddp_rank_that_stops_responding_fails_the_others_within_the_timeout(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SNETX_TRAIN_INTERRUPT_AT", None)
    torchrun = subprocess.Popen(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", "-m", "snetx.train"),
            *FAST,
            *("--epochs", "50", "--device", "cpu", "--ddp-timeout", "5", "--out", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    ranks = {}
    try:
        deadline = time.time() + 120
        while not (out / "config.json").exists():  # training has started on every rank
            assert torchrun.poll() is None and time.time() < deadline, torchrun.stderr.read()
            time.sleep(0.1)
        ranks = {_rank_of(p): p for p in _children(torchrun.pid)}
        os.kill(ranks[1], signal.SIGSTOP)  # rank 1 stops responding
        stopped = time.monotonic()
        while Path(f"/proc/{ranks[0]}").exists() and time.monotonic() - stopped < 60:
            if (Path(f"/proc/{ranks[0]}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z":
                break
            time.sleep(0.1)
        waited = time.monotonic() - stopped
        assert waited < 5 + 25, f"rank 0 still waiting after {waited:.0f} s"
    finally:
        for pid in ranks.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, err = torchrun.communicate(timeout=120)
    assert torchrun.returncode != 0
    assert "another process of the run stopped responding" in err, err[-3000:]
    assert "--ddp-timeout 5 s" in err


def test_a_lost_peer_inside_backward_is_reported_as_one_line_and_other_errors_pass():
    # DDP's own all-reduce runs inside backward(); when the peer is gone there, gloo raises
    # this (the message of a real CI run), which must read as the --ddp-timeout error.
    from snetx.train.distributed import RankTimeout, Run

    run = Run("cpu", timeout_s=5)
    run.distributed = True  # the translation only applies to a run with peers
    gloo = (
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] "
        "Timed out waiting 5000ms for recv operation to complete"
    )
    with pytest.raises(RankTimeout, match=r"stopped responding .*--ddp-timeout 5 s.*Timed out"):
        with run.watch():
            raise RuntimeError(gloo)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes"):
        with run.watch():
            torch.nn.Linear(3, 2)(torch.zeros(1, 4))
    run.distributed = False
    with pytest.raises(RuntimeError, match="Timed out"):
        with run.watch():
            raise RuntimeError(gloo)


def test_checkpoint_pt_exists_at_every_moment_of_a_save(tmp_path, monkeypatch):
    # The CI run that killed a run between "checkpoint.pt -> checkpoint-prev.pt" and
    # "new -> checkpoint.pt" found no checkpoint.pt. Now the old one stays until the new
    # one replaces it: watch every rename of a save.
    from snetx.train import checkpoint

    checkpoint.save({"model": {}, "n": 1}, tmp_path)
    seen = []
    real = os.replace

    def watching(src, dst):
        seen.append((tmp_path / "checkpoint.pt").exists())
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", watching)
    checkpoint.save({"model": {}, "n": 2}, tmp_path)
    assert seen and all(seen)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["n"] == 2
    assert torch.load(tmp_path / "checkpoint-prev.pt", weights_only=True)["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-prev.pt", "checkpoint.pt"]
