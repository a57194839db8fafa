"""One run per output folder: an advisory lock on ``<out>/.lock`` holding the owner's PID.

The lock is ``fcntl.flock`` on an open file, so the kernel releases it when the process
ends in any way (kill -9 included): there are no stale locks to clean by hand.
"""

import os
from pathlib import Path

NAME = ".lock"


class FolderBusy(Exception):
    """Another live process holds the folder."""


class FolderLock:
    def __init__(self, folder):
        self.path = Path(folder) / NAME
        self._fd = None

    def acquire(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise FolderBusy(
                f"output folder {self.path.parent} is in use by another snetx-train run "
                f"(pid {owner}); wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
