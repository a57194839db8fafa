"""The output folder of a run: which folder a fresh run takes, what ``--overwrite``
removes, and files written without following planted links.

A folder *holds a run* when it has any of :data:`RUN_FILES`. Without ``--out`` a fresh
run never reuses such a folder: it takes ``runs/<dataset>-<model>``, else the first free
``-2``, ``-3``, ... (as Ultralytics numbers ``runs/train2``); ``--resume`` without
``--out`` continues the newest of them. An explicit ``--out`` that holds a run is
refused unless ``--resume`` or ``--overwrite`` is given; ``--overwrite`` removes the old
run's files (these names only, never anything else in the folder) once the new run has
built its data and model, so a run that fails to start loses nothing.
"""

import os
import tempfile
from pathlib import Path

#: The files a run writes; any of them means the folder holds a run.
RUN_FILES = (
    "checkpoint.pt",
    "checkpoint-prev.pt",
    "metrics.jsonl",
    "config.json",
    "summary.json",
    "synaptic_ops.md",
    "curves.png",
    "firing_rates.png",
)


def holds_run(folder) -> bool:
    folder = Path(folder)
    return any(os.path.lexists(folder / name) for name in RUN_FILES)


def planted_links(folder):
    """The names of the run's files (and its lock) in ``folder`` that are symbolic links."""
    return [n for n in (*RUN_FILES, ".lock") if os.path.islink(Path(folder) / n)]


def numbered(base: Path):
    """``base``, ``base-2``, ``base-3``, ..."""
    yield base
    n = 2
    while True:
        yield base.with_name(f"{base.name}-{n}")
        n += 1


def fresh(base) -> Path:
    """The first of :func:`numbered` that holds no run (a run is never reused)."""
    for folder in numbered(Path(base)):
        if not holds_run(folder):
            return folder
    raise AssertionError("unreachable")  # pragma: no cover


def newest(base) -> Path:
    """The numbered folder whose checkpoint is newest (``base`` when none has one)."""
    best, best_time = Path(base), None
    for folder in numbered(Path(base)):
        if not folder.exists():
            break
        for name in ("checkpoint.pt", "checkpoint-prev.pt"):
            try:
                t = (folder / name).stat().st_mtime_ns
            except OSError:
                continue
            if best_time is None or t > best_time:
                best, best_time = folder, t
    return best


def remove_run(folder) -> None:
    """Remove the files of the run in ``folder`` (only :data:`RUN_FILES`)."""
    for name in RUN_FILES:
        path = Path(folder) / name
        if os.path.lexists(path):
            path.unlink()


# ---- writing without following links --------------------------------------------------
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SymlinkedOutput(OSError):
    """An output file of the run is a symbolic link: it is not written through."""


def _refuse_link(path):
    if os.path.islink(path):
        raise SymlinkedOutput(
            f"{path} is a symbolic link; snetx-train does not write through links "
            "(remove it, or choose another --out)"
        )


def _write_new(path, write) -> None:
    """``write(binary file)`` into a new file renamed to ``path``: a link planted at
    ``path`` is refused, never followed, and a failed write leaves nothing behind."""
    path = Path(path)
    _refuse_link(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    """Write ``path`` as a new file renamed into place."""
    _write_new(path, lambda f: f.write(text.encode()))


def save_figure(fig, path, **kwargs) -> None:
    """``fig.savefig`` into a new file renamed into place."""
    fmt = Path(path).suffix.lstrip(".")
    _write_new(path, lambda f: fig.savefig(f, format=fmt, **kwargs))


def append_text(path, text: str) -> None:
    """Append to ``path`` (created if missing) without following a link."""
    _refuse_link(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(text)
