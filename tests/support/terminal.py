"""A command-line tool run live on a pseudo-terminal, its output read in a thread (for
`roomctl status`, which draws live only on a terminal)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading

from tests.support.mqtt import wait_until


class LiveOutput:
    """`python -m controller.cli ARGS` on a pty, output collected as it comes; `stop()` ends it."""

    def __init__(self, *args: str, columns: int = 200) -> None:
        self._master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", *args],
            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
            env={**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"},
        )  # fmt: skip
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for _ in iter(int, 1):  # until end of file (EIO once the child has gone)
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, needle: str, timeout: float = 20.0) -> None:
        wait_until(lambda: needle in self.text, timeout, f"{needle!r} in the output")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(15)
        self._reader.join(15)
        os.close(self._master)
