"""snetx-train end to end on the offline digits dataset."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from snetx.train import main

FAST = ["--dataset", "digits", "--batch-size", "64", "--quiet", "--seed", "0"]


def _read(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _without_times(records):
    return [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in records]


def test_short_run_learns_and_writes_files(tmp_path):
    out = tmp_path / "run"
    assert main([*FAST, "--epochs", "2", "--out", str(out)]) == 0
    records = _read(out)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["test_acc"] > 0.8  # chance is 0.1
    for name in ("checkpoint.pt", "config.json", "summary.json", "curves.png", "firing_rates.png"):
        assert (out / name).is_file(), name
    with open(out / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["firing_rates"]) == {"features.1", "features.3", "features.6"}
    assert all(0 < r < 1 for r in summary["firing_rates"].values())
    ops = summary["synaptic_ops"]
    assert ops["samples"] == 360  # the test set
    first = ops["layers"]["features.0.module.0"]  # the encoding conv sees the image: MACs
    assert first["mac"] > 0 and first["ac"] == 0 and not first["spike_input"]
    later = ops["layers"]["features.2.module.0"]  # fed by spikes: ACs
    assert later["ac"] > 0 and later["mac"] == 0 and later["spike_input"]
    assert ops["totals"]["energy_pj"] == pytest.approx(
        ops["totals"]["ac"] * 0.9 + ops["totals"]["mac"] * 4.6
    )
    assert "| total |" in (out / "synaptic_ops.md").read_text()
    assert records[-1]["train_images_per_s"] > 0
    assert not list(out.glob(".checkpoint-*"))  # atomic write left no temporary file


@pytest.mark.parametrize(
    "opts",
    [
        ["--loss", "ce", "--optimizer", "sgd", "--schedule", "none", "--surrogate", "sigmoid"],
        ["--surrogate", "triangle", "--alpha", "2", "--tau", "1.5", "--workers", "1"],
        ["--amp"],  # bf16 on the CPU (with 11 steps of batch 128, BatchNorm statistics lag)
        ["--memory", "checkpoint"],  # each layer recomputed in backward
    ],
)
def test_option_combinations_train(tmp_path, opts):
    out = tmp_path / "run"
    assert main([*FAST, "--epochs", "1", "--no-plots", "--out", str(out), *opts]) == 0
    assert _read(out)[0]["test_acc"] > 0.6
    config = json.loads((out / "config.json").read_text())
    assert config["surrogate"] == (
        opts[opts.index("--surrogate") + 1] if "--surrogate" in opts else "arctan"
    )


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    from snetx.snn.algorithm import EvolvedAlpha

    shared = EvolvedAlpha.state_dict()
    args = [*FAST, "--epochs", "2", "--evolved-alpha", "--no-plots"]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    part = tmp_path / "part"
    monkeypatch.setenv("SNETX_TRAIN_INTERRUPT_AT", "30")  # epoch 2, batch 8 of 22
    assert main([*args, "--out", str(part)]) == 130
    ckpt = torch.load(part / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 8)
    assert len(_read(part)) == 1
    monkeypatch.delenv("SNETX_TRAIN_INTERRUPT_AT")
    assert main([*args, "--out", str(part), "--resume"]) == 0
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=0, atol=0, msg=k)
    assert _without_times(_read(part)) == _without_times(_read(full))
    assert b["alpha_schedule"] == a["alpha_schedule"] == {"epoch": 2, "e_max": 1.0, "current": 2}
    assert EvolvedAlpha.state_dict() == shared  # the run kept its schedule to itself


def test_ctrl_c_writes_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "snetx.train", *FAST, "--epochs", "200", "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err and "Traceback" not in err
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] >= 1


@pytest.mark.slow  # CI: test_strategy's DDP run under torchrun checks the same
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "snetx.train",
            *FAST,
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--batch-size",
            "32",
            "--out",
            str(out),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["rank_parameter_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert _read(out)[0]["test_acc"] > 0.5


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--T", "0"], "--T must be >= 1"),
        (["--model", "vgg11", "--dataset", "digits"], "vgg11 takes 32x32 or larger"),
        (["--dataset", "mnist", "--no-download"], "mnist not found in"),
        (["--epochs", "x"], "invalid int value"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, expected, tmp_path, capsys):
    code = main([*argv, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_backend_cuda_without_gpu_console_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "snetx.train", "--backend", "cuda", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "--backend cuda needs a CUDA GPU" in err and len(err.splitlines()) == 1


def test_log_without_a_terminal_is_one_line_per_epoch(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ)
    env.pop("SNETX_TRAIN_INTERRUPT_AT", None)
    proc = subprocess.run(  # stderr is a pipe: no progress bars, one JSON line per epoch
        [sys.executable, "-m", "snetx.train", "--dataset", "digits", "--seed", "0", "--epochs", "2"]
        + ["--no-plots", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2], lines


def test_plif_and_soft_reset_train_and_report_firing_rates(tmp_path):
    out = tmp_path / "run"
    args = [*FAST, "--epochs", "1", "--no-plots", "--neuron", "plif", "--reset", "soft"]
    assert main([*args, "--out", str(out)]) == 0
    assert _read(out)[0]["test_acc"] > 0.6
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    taus = [1 / torch.sigmoid(v).item() for k, v in ckpt["model"].items() if k.endswith(".w")]
    assert len(taus) == 3 and any(abs(t - 2.0) > 1e-4 for t in taus)  # learned, per layer
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["firing_rates"]) == {"features.1", "features.3", "features.6"}
    config = json.loads((out / "config.json").read_text())
    assert config["neuron"] == "plif" and config["reset"] == "soft"
