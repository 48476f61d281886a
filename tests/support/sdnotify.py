"""A `roomctl` service started as systemd would start a `Type=notify` unit with `WatchdogSec`:
a datagram socket in `NOTIFY_SOCKET` and a short `WATCHDOG_USEC`, with what the service said
collected in order (the tests of the logger, the board and the notifier)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NotifiedService:
    def __init__(self, server: socket.socket, proc: subprocess.Popen[bytes]):
        self.server = server
        self.proc = proc
        self.got: list[str] = []  # each datagram the service sent

    def until(self, text: str, count: int = 1) -> None:
        """Read datagrams until `text` has come `count` times (each read bounded: 30 s)."""
        while sum(text in g for g in self.got) < count:
            self.got.append(self.server.recv(4096).decode())

    def stop(self) -> int:
        """SIGTERM, then wait for STOPPING=1 and the exit; return the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        self.until("STOPPING=1")
        return self.proc.wait(30)


@contextmanager
def notified_service(
    tmp_path: Path, *args: str, cwd: Path | None = None
) -> Iterator[NotifiedService]:
    """`roomctl ARGS` under a notify socket and a 0.4 s watchdog; killed if still running."""
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(sock_path))
        server.settimeout(30)
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", *args],
            cwd=cwd,
            env={**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield NotifiedService(server, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            assert proc.stderr is not None
            proc.stderr.close()
