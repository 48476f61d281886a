"""One room controller per state folder: an exclusive `flock` on `<state_dir>/roomctl.lock`.

Two daemons on one outbox would number messages twice and fight over the broker session;
`roomctl room selftest` must not drive the outputs under a running daemon. The kernel drops
the lock when the process ends, however it ends (SIGKILL included), so a crash never leaves a
stale lock behind. The file holds the owner's pid, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class StateLocked(Exception):
    """Another process holds the state folder."""


class StateLock:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "roomctl.lock"
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StateLocked(
                f"a room controller (pid {owner}) is using {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[StateLock]:
    lock = StateLock(state_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()
