"""One run per output folder: an advisory lock on ``<out>/.lock`` holding the owner's PID.

The lock is ``fcntl.flock`` on an open file, so the kernel releases it when the process
ends in any way (kill -9 included): there are no stale locks to clean by hand. A run that
ends removes the file; a ``.lock`` that is a symbolic link is refused, never followed.
"""

import os
from pathlib import Path

NAME = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class FolderBusy(Exception):
    """Another live process holds the folder."""


class FolderLock:
    def __init__(self, folder):
        self.path = Path(folder) / NAME
        self._fd = None

    def acquire(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:  # never through a planted link: it could truncate the link's target
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            except OSError as e:
                if os.path.islink(self.path):
                    raise FolderBusy(
                        f"{self.path} is a symbolic link; snetx-train does not write through "
                        "links (remove it, or choose another --out)"
                    ) from None
                raise e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise FolderBusy(
                    f"output folder {self.path.parent} is in use by another snetx-train run "
                    f"(pid {owner}); wait for it to finish or choose another --out"
                ) from None
            # the run that held it may have removed the file meanwhile: lock the file that
            # is at the path now, or two runs could each hold a lock on a different inode
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        """Remove the lock file, then drop the lock (a finished run leaves no .lock)."""
        if self._fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
