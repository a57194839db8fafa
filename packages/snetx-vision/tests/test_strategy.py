"""--strategy under torchrun (gloo on CPU): FSDP trains exactly as DDP does, checkpoints
are the same whichever strategy wrote them (resume across strategies, export), and
--strategy none is refused with several processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from snetx.train import main
from snetx.train.export import main as export

FAST = ["--dataset", "digits", "--batch-size", "32", "--quiet", "--seed", "0", "--no-plots"]


def torchrun(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SNETX_TRAIN_INTERRUPT_AT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "snetx.train", *FAST, "--device", "cpu", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def records(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if "time" not in k and "per_s" not in k}
            for x in lines]  # fmt: skip


def test_fsdp_trains_as_ddp_and_checkpoints_cross_strategies(tmp_path):
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    torchrun("--epochs", "2", "--strategy", "ddp", "--out", str(ddp))
    torchrun("--epochs", "1", "--strategy", "fsdp", "--out", str(fsdp))
    # the FSDP checkpoint is a plain one: the model's own names, torch.optim's index form
    a = torch.load(fsdp / "checkpoint.pt", weights_only=True)
    b = torch.load(ddp / "checkpoint-prev.pt", weights_only=True)  # DDP after epoch 1
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert sorted(a["optimizer"]["state"]) == sorted(b["optimizer"]["state"])
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(value, b["optimizer"]["state"][i][key], rtol=0, atol=0)
    # resumed under the other strategy, it continues exactly as the DDP run did
    torchrun("--epochs", "2", "--strategy", "ddp", "--resume", "--out", str(fsdp))
    assert records(fsdp) == records(ddp)
    summary = json.loads((fsdp / "summary.json").read_text())
    digests = summary["rank_parameter_sha256"]
    reference = json.loads((ddp / "summary.json").read_text())
    assert reference["world_size"] == 2 and records(ddp)[0]["test_acc"] > 0.5
    assert digests[0] == digests[1] == reference["rank_parameter_sha256"][0]
    nir_file = tmp_path / "m.nir"
    assert export(["--checkpoint", str(fsdp / "checkpoint.pt"), "--out", str(nir_file)]) == 0


@pytest.mark.slow
def test_fsdp_with_every_layer_checkpointed_trains_as_ddp(tmp_path):
    """--memory checkpoint under FSDP (each layer recomputed in backward while the
    parameters are sharded): an epoch ends with DDP's compact run's parameters, bit for
    bit, under the model's own names."""
    ddp, ckpt = tmp_path / "ddp", tmp_path / "fsdp-checkpoint"
    torchrun("--epochs", "1", "--strategy", "ddp", "--out", str(ddp))
    torchrun("--epochs", "1", "--strategy", "fsdp", "--memory", "checkpoint", "--out", str(ckpt))
    a = torch.load(ddp / "checkpoint.pt", weights_only=True)
    c = torch.load(ckpt / "checkpoint.pt", weights_only=True)
    assert c["model"].keys() == a["model"].keys()
    for k in c["model"]:
        torch.testing.assert_close(c["model"][k], a["model"][k], rtol=0, atol=0, msg=k)


def test_strategy_none_is_refused_under_torchrun(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*FAST, "--strategy", "none", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--strategy none runs one process" in err


def test_a_single_process_run_takes_any_strategy(tmp_path):
    for name in ("none", "fsdp"):
        out = str(tmp_path / name)
        assert main([*FAST, "--epochs", "1", "--strategy", name, "--out", out]) == 0
    assert records(tmp_path / "none") == records(tmp_path / "fsdp")
