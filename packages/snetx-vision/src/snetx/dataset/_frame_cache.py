"""The on-disk cache of computed frames, with the kernel cache's rules of trust.

Root. ``cache_dir`` (default ``$SNETX_CACHE_DIR/frames``, else ``~/.cache/snetx/frames``)
is used when it belongs to this user and nobody else can write it; otherwise (``/tmp``, a
shared folder) a private ``snetx-frames-<uid>`` folder inside it is used, created with
mode 0700 and checked the same way. When no private folder can be had, frames are
computed in memory, with one warning.

Entries. One ``<index>.npz`` per sample holds the frames and what they were computed
from: the SHA-256 of the sample's source file and that file's size, times and inode. An
entry is served only when it is a regular file (no link) of this user that nobody else
can write, its frames have the expected shape and dtype and are finite, and its source
is unchanged (same stat identity; on any difference the file's content hash decides, so
a file changed in place with its old size and mtime is caught by its ctime). Anything
else is recomputed, with one warning per dataset. Writes go to a temporary file renamed
into place; a full disk raises "no space left on device" naming the folder and leaves no
partial entry. A complete cache is read without writing anything (read-only is fine).
"""

import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from ._common import DatasetError

__all__ = ["FrameCache", "default_root", "source_identity"]


def default_root() -> Path:
    """``frames`` in snetx's per-user cache (``$SNETX_CACHE_DIR``, else ``~/.cache/snetx``),
    beside the host kernel's."""
    from snetx.snn._host_kernel import cache_dir

    return cache_dir() / "frames"


def _why_untrusted(st, path):
    """None when ``st`` (an lstat) is a private folder or file of this user, else why
    (the host kernel cache's rules)."""
    from snetx.snn._host_kernel import untrusted

    return untrusted(st, path) or None


def _private_folder(path: Path):
    """Create ``path`` (0700) if missing; None when it is trusted, else why not."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        return f"cannot create {path}: {e.strerror or e}"
    return _why_untrusted(path.lstat(), path)


def private_root(root) -> Path:
    """The folder to keep frames in under ``root`` (see the module doc); raises
    DatasetError saying why when neither ``root`` nor a private folder in it is usable."""
    root = Path(root)
    why = _private_folder(root)
    if why is None:
        return root
    own = root / f"snetx-frames-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    if not os.path.lexists(root) or not root.is_dir():
        raise DatasetError(f"frame cache: {why}")
    why_own = _private_folder(own)
    if why_own is not None:
        raise DatasetError(f"frame cache: {why}, and {why_own}")
    return own


# ---- what a sample was computed from -------------------------------------------------
_hashes = {}
_hash_lock = threading.Lock()


def source_identity(path) -> list:
    """size, mtime, ctime (ns) and inode of ``path``: any write to it changes the ctime."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def content_hash(path, identity) -> str:
    """SHA-256 of the file's bytes (memoised per identity in this process)."""
    key = (os.fspath(path), tuple(identity))
    with _hash_lock:
        if key in _hashes:
            return _hashes[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _hashes[key] = digest
    return digest


def _no_space(e, folder, nbytes):
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    try:  # numpy reports a short write as "N requested and M written", without errno
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize < nbytes + (1 << 16)
    except OSError:
        return False


class FrameCache:
    """One cache folder (a dataset split and its settings) under the private root.

    ``shape`` is the frames' shape; ``get(i, source_path)`` returns the cached frames of
    sample ``i`` or None; ``put(i, frames, source_path)`` stores them. When no private
    folder can be had, :attr:`folder` is None and nothing is kept.
    """

    def __init__(self, root, name, settings, shape):
        self.shape, self.name = tuple(shape), name
        self._warned = False
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        try:
            base = private_root(default_root() if root is None else root)
        except DatasetError as e:
            self.folder = None
            warnings.warn(f"snetx: {e}; frames are computed in memory", RuntimeWarning, 3)
            return
        self.folder = base / f"{name}-{digest}"
        why = _private_folder(self.folder)
        if why is not None:
            warnings.warn(
                f"snetx: frame cache: {why}; frames are computed in memory", RuntimeWarning, 3
            )
            self.folder = None
            return
        self._settings(settings)

    def _settings(self, settings):
        """settings.json, for a person reading the folder: written once, never rewritten
        (a complete cache on a read-only disk is read as it is)."""
        path = self.folder / "settings.json"
        text = json.dumps(settings, sort_keys=True)
        try:
            if not path.is_symlink() and path.is_file() and path.read_text() == text:
                return
            self._write(path, text.encode())
        except (OSError, DatasetError):
            pass  # informational only

    def path(self, i):
        return None if self.folder is None else self.folder / f"{i}.npz"

    def has(self, i) -> bool:
        path = self.path(i)
        return path is not None and path.is_file()

    def _recompute(self, reason):
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"snetx: frame cache {self.folder}: {reason}; recomputed", RuntimeWarning, 4
            )

    def get(self, i, source):
        """The trusted cached frames of sample ``i`` (computed from the file ``source``),
        or None: missing, or untrusted (recomputed, one warning per dataset)."""
        path = self.path(i)
        if path is None:
            return None
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        why = _why_untrusted(st, path) or (
            None if stat.S_ISREG(st.st_mode) else f"{path} is not a file"
        )
        if why is not None:
            self._recompute(why)
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f, np.load(f, allow_pickle=False) as entry:
                frames = entry["frames"]
                recorded = str(entry["source"])
                identity = entry["identity"].tolist()
        except (OSError, ValueError, KeyError, EOFError) as e:
            self._recompute(f"{path.name} is unreadable ({type(e).__name__})")
            return None
        if frames.shape != self.shape or frames.dtype != np.float32:
            self._recompute(f"{path.name} holds frames of shape {frames.shape} {frames.dtype}")
            return None
        if not np.isfinite(frames).all():
            self._recompute(f"{path.name} holds non-finite frames")
            return None
        now = source_identity(source)
        if identity != now and content_hash(source, now) != recorded:
            self._recompute(f"{source} changed since its frames were computed")
            return None
        return frames

    def put(self, i, frames, source):
        path = self.path(i)
        if path is None:
            return
        identity = source_identity(source)
        record = {
            "frames": frames,
            "source": np.array(content_hash(source, identity)),
            "identity": np.array(identity, dtype=np.int64),
        }
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **record)
        self._write(path, buffer.getvalue())

    def _write(self, path, data: bytes):
        """``data`` into a temporary file renamed to ``path``; DatasetError on a full disk
        (no partial entry is left)."""
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            tmp = None
        except OSError as e:
            if _no_space(e, self.folder, len(data)):
                raise DatasetError(
                    f"no space left on device while caching frames in {self.folder} "
                    "(free some space, or choose another --cache-dir)"
                ) from None
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                self._recompute(f"cannot write there ({e.strerror}); frames kept in memory")
                return
            raise DatasetError(f"cannot write frames in {self.folder}: {e}") from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
