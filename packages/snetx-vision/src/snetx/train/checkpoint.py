"""Checkpoints of snetx-train: plain data only, written atomically, the previous one kept.

A checkpoint is a ``torch.save`` of a dict of tensors and plain Python data (numbers,
strings, lists, dicts), marked ``format: "snetx-train"``. It is read back with
``torch.load(weights_only=True)``, so a file that holds any other object is refused
unread: loading a checkpoint never runs code from it. RNG states are stored as tensors
and numbers, not as numpy or Python pickles.

``save`` writes ``.checkpoint-*.tmp``, fsyncs it, moves the current ``checkpoint.pt`` to
``checkpoint-prev.pt`` and renames the new file into place. ``load`` reads the newest
usable file and falls back to the previous one with a warning.
"""

import errno
import os
import random
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

FORMAT = "snetx-train"
VERSION = 1
LATEST = "checkpoint.pt"
PREVIOUS = "checkpoint-prev.pt"
_TMP_GLOB = ".checkpoint-*.tmp"
REQUIRED = ("model", "optimizer", "epoch", "step", "phase", "rng", "history", "args")


class CheckpointError(Exception):
    """A checkpoint that cannot be written or used: printed as one line."""


class NoUsableCheckpoint(CheckpointError):
    """--resume found no checkpoint it may load."""


def rng_states():
    """Every RNG the training loop draws from, as tensors and plain numbers."""
    version, state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(state), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    torch.set_rng_state(states["torch"])
    py = states["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = states["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def paths(out):
    return Path(out) / LATEST, Path(out) / PREVIOUS


def exists(out) -> bool:
    return any(p.is_file() for p in paths(out))


def clean_orphans(out):
    """Remove temporary files a killed run left behind (call with the folder locked)."""
    for tmp in Path(out).glob(_TMP_GLOB):
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _no_space(e):
    """Whether ``e`` or an exception it was raised while handling is ENOSPC."""
    while e is not None:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        e = e.__cause__ or e.__context__
    return False


def _keep_as_previous(latest, previous, folder):
    """Make ``previous`` the current ``latest`` while ``latest`` stays in place (a hard
    link renamed over ``previous``): a kill at any moment leaves a complete
    ``checkpoint.pt``. Where hard links are not supported, ``latest`` is renamed."""
    link = Path(tempfile.mktemp(prefix=".checkpoint-prev-", suffix=".tmp", dir=folder))
    try:
        os.link(latest, link)
    except OSError:
        os.replace(latest, previous)
        return
    os.replace(link, previous)


def save(state, out):
    """Write ``state`` as ``out/checkpoint.pt``; the one it replaces becomes
    ``checkpoint-prev.pt``. ``checkpoint.pt`` is complete at every moment (the old one
    until the new one is renamed over it); on failure the existing checkpoints are left
    as they were."""
    latest, previous = paths(out)
    folder = latest.parent
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if latest.exists():
            _keep_as_previous(latest, previous, folder)
        os.replace(tmp, latest)
        tmp = None
        _fsync_dir(folder)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as RuntimeError
        if _no_space(e):
            raise CheckpointError(
                f"no space left on device while writing a checkpoint in {folder}; "
                "the previous checkpoint is kept"
            ) from None
        if not isinstance(e, OSError) and not isinstance(e.__context__, OSError):
            raise
        raise CheckpointError(f"cannot write a checkpoint in {folder}: {e}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def read(path):
    """The checkpoint at ``path``, or raise ValueError saying why it is not usable."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError("missing") from None
    except Exception as e:  # torch raises many types for damaged files
        text = str(e)
        if re.search(r"global|reduce", text, re.IGNORECASE):  # a callable named in the file
            raise ValueError(
                "refused: it holds objects other than tensors and plain data, "
                "and loading it could run code"
            ) from None
        if "WeightsUnpickler error:" in text:  # the unpickler's own words on bad bytes
            text = text.split("WeightsUnpickler error:", 1)[1]
        elif "Weights only load failed" in text:
            text = ""
        words = text.strip().splitlines()
        raise ValueError(
            f"unreadable (truncated or damaged: {words[0] if words else type(e).__name__})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError("not a snetx-train checkpoint")
    if obj.get("version") != VERSION:
        raise ValueError(f"checkpoint format version {obj.get('version')!r}, expected {VERSION}")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise ValueError(f"incomplete snetx-train checkpoint (no {', '.join(missing)})")
    validate(obj)
    return obj


# ---- the schema, checked once on load ------------------------------------------------


class _Bad(ValueError):
    pass


def _need(ok, field, want):
    if not ok:
        raise _Bad(f"field {field!r} is not {want}")


def _is_int(v, low=0):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tensor(v, field, dtype=None, numel=None):
    _need(torch.is_tensor(v), field, "a tensor")
    if dtype is not None:
        _need(v.dtype == dtype, field, f"a {dtype} tensor")
    if numel is not None:
        _need(v.numel() == numel, field, f"a tensor of {numel} elements")


def _rng(r, field):
    _need(isinstance(r, dict), field, "a dict of RNG states")
    for key in ("torch", "python", "numpy"):
        _need(key in r, f"{field}.{key}", "present")
    _tensor(r["torch"], f"{field}.torch", torch.uint8, torch.get_rng_state().numel())
    py = r["python"]
    _need(isinstance(py, dict) and {"version", "state", "gauss"} <= set(py), f"{field}.python",
          "a dict with version, state and gauss")  # fmt: skip
    _tensor(py["state"], f"{field}.python.state", numel=625)
    _need(_is_int(py["version"]), f"{field}.python.version", "an int")
    _need(py["gauss"] is None or _is_number(py["gauss"]), f"{field}.python.gauss", "a number")
    npy = r["numpy"]
    _need(isinstance(npy, dict) and {"keys", "pos", "has_gauss", "cached"} <= set(npy),
          f"{field}.numpy", "a dict with keys, pos, has_gauss and cached")  # fmt: skip
    _tensor(npy["keys"], f"{field}.numpy.keys", numel=624)
    _need(_is_int(npy["pos"]) and npy["pos"] <= 624, f"{field}.numpy.pos", "an int in [0, 624]")
    _need(_is_int(npy["has_gauss"]), f"{field}.numpy.has_gauss", "an int")
    _need(_is_number(npy["cached"]), f"{field}.numpy.cached", "a number")
    if "cuda" in r:
        _need(isinstance(r["cuda"], list), f"{field}.cuda", "a list of tensors")
        for i, t in enumerate(r["cuda"]):
            _tensor(t, f"{field}.cuda[{i}]", torch.uint8)


def _loader(v, field):
    _need(isinstance(v, dict) and {"generator", "epoch"} <= set(v), field,
          "a dict with generator and epoch")  # fmt: skip
    if v["generator"] is not None:
        _tensor(v["generator"], f"{field}.generator", torch.uint8,
                torch.Generator().get_state().numel())  # fmt: skip
    _need(v["epoch"] is None or _is_int(v["epoch"]), f"{field}.epoch", "an int or null")


def validate(obj):
    """Check every field a resume reads, so that a damaged or hand-edited checkpoint is
    refused in one line naming the field (ValueError) instead of failing mid-restore or
    recording a fake epoch."""
    try:
        _need(isinstance(obj["args"], dict) and all(isinstance(k, str) for k in obj["args"]),
              "args", "a dict of options")  # fmt: skip
        for key in ("dataset", "model"):
            _need(isinstance(obj["args"].get(key), str), f"args.{key}", "a name")
        model = obj["model"]
        _need(isinstance(model, dict) and all(torch.is_tensor(v) for v in model.values()),
              "model", "a dict of tensors")  # fmt: skip
        opt = obj["optimizer"]
        _need(isinstance(opt, dict) and isinstance(opt.get("state"), dict)
              and isinstance(opt.get("param_groups"), list), "optimizer",
              "an optimizer state (state and param_groups)")  # fmt: skip
        _need(isinstance(obj.get("scaler"), dict), "scaler", "a dict (the GradScaler state)")
        _need(_is_int(obj.get("world_size", 1), 1), "world_size", "an int >= 1")
        _need(_is_int(obj["epoch"]), "epoch", "an int >= 0")
        _need(_is_int(obj["step"]), "step", "an int >= 0")
        _need(obj["phase"] in ("train", "evaluate"), "phase", "'train' or 'evaluate'")
        history = obj["history"]
        _need(isinstance(history, list) and all(isinstance(h, dict) for h in history),
              "history", "a list of epoch records")  # fmt: skip
        _need(len(history) == obj["epoch"], "history",
              f"one record per epoch done ({obj['epoch']})")  # fmt: skip
        for i, h in enumerate(history):
            _need(isinstance(h.get("test_acc"), (int, float)), f"history[{i}].test_acc",
                  "a number")  # fmt: skip
        sums = obj.get("sums")
        _need(isinstance(sums, list) and len(sums) == 3 and all(map(_is_number, sums)), "sums",
              "a list of 3 numbers")  # fmt: skip
        _rng(obj["rng"], "rng")
        _loader(obj.get("loader"), "loader")
        start = obj.get("epoch_start")
        if start is not None:
            _need(isinstance(start, dict) and {"rng", "loader"} <= set(start), "epoch_start",
                  "null or a dict with rng and loader")  # fmt: skip
            _rng(start["rng"], "epoch_start.rng")
            _loader(start["loader"], "epoch_start.loader")
        schedule = obj.get("alpha_schedule")
        _need(schedule is None or isinstance(schedule, dict), "alpha_schedule", "null or a dict")
    except _Bad as e:
        raise ValueError(f"malformed snetx-train checkpoint: {e}") from None


def load(out):
    """The newest usable checkpoint in ``out`` (``checkpoint.pt``, then
    ``checkpoint-prev.pt`` with a warning). Raises CheckpointError naming every file
    tried and why it was not used."""
    tried = []
    for path in paths(out):
        try:
            obj = read(path)
        except ValueError as e:
            tried.append(f"{path}: {e}")
            continue
        if tried:
            warnings.warn(
                f"snetx-train: {tried[-1]}; resuming from the previous checkpoint {path}",
                RuntimeWarning,
                stacklevel=2,
            )
        return obj
    raise NoUsableCheckpoint("no usable checkpoint to resume from; tried " + "; ".join(tried))
