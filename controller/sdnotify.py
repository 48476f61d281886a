"""systemd's notify/watchdog protocol (sd_notify), without a dependency.

Under systemd with `Type=notify`, `$NOTIFY_SOCKET` names a datagram socket; we send
`READY=1` once running, `WATCHDOG=1` at half of `$WATCHDOG_USEC` from the main loop (so a
stuck loop gets the daemon restarted), `STATUS=...` for `systemctl status`, and
`STOPPING=1` on the way out. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable


class SystemdNotifier:
    def __init__(
        self, environ: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic
    ):
        env = os.environ if environ is None else environ
        self._clock = clock
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._addr = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        interval = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        if pid and pid.isdigit() and int(pid) != os.getpid():
            interval = None
        self.watchdog_interval = interval
        self._next_ping = 0.0
        self._sock: socket.socket | None = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> bool:
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._addr)
            return True
        except OSError:
            return False

    def ready(self, status: str = "running") -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog_due(self) -> float | None:
        """Seconds until the next ping is due (None when the watchdog is off)."""
        if self.watchdog_interval is None:
            return None
        return max(0.0, self._next_ping - self._clock())

    def ping_if_due(self) -> None:
        if self.watchdog_interval is None:
            return
        now = self._clock()
        if now >= self._next_ping:
            self.notify("WATCHDOG=1")
            self._next_ping = now + self.watchdog_interval / 2

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
