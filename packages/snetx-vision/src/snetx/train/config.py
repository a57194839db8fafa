"""The run's configuration: what a resumed run may change, strict JSON files.

A checkpoint stores the arguments of the run that wrote it. ``--resume`` compares them
with the new ones: options in :data:`SAFE_TO_CHANGE` only change how the run is shown or
fed, never what is trained; any other difference is refused.
"""

import json
import math

#: Options that may differ on --resume. ``epochs`` may grow (not shrink below the epochs
#: already done); with the cosine schedule the learning rate then follows the cosine of
#: the new length from the epoch reached. ``workers`` may change only when the training
#: data is not randomly augmented (the loader processes draw the augmentation).
SAFE_TO_CHANGE = frozenset(
    {
        "epochs",
        "quiet",
        "no_plots",
        "workers",
        "no_download",
        "data_dir",
        "out",
        "resume",
        "ddp_timeout",
        "overwrite",
        "cache_dir",
        "strategy",
        "memory",
    }
)


def differences(saved: dict, new: dict, defaults: dict):
    """``["--lr 0.003 -> 0.01", ...]`` for every option outside SAFE_TO_CHANGE that
    differs between the saved and the new configuration. An option the checkpoint
    predates had its default: ``defaults`` is the parser's (``cli.parser_defaults()``),
    so an option added later needs no list kept by hand."""
    out = []
    for key in sorted(set(saved) | set(new)):
        if key in SAFE_TO_CHANGE:
            continue
        a = saved.get(key, defaults.get(key, "<unset>"))
        b = new.get(key, "<unset>")
        if a != b:
            out.append(f"--{key.replace('_', '-')} {a} -> {b}")
    return out


def plain(value):
    """``value`` with non-finite floats as None, so that the JSON written is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def dumps(value, **kwargs) -> str:
    """Strict JSON (no bare NaN or Infinity: they become null)."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)
