"""systemd's notify/watchdog protocol for the central services (the room has its own copy in
`controller/sdnotify.py`: the central side does not import the room package).

Under `Type=notify`, `$NOTIFY_SOCKET` names a datagram socket: `READY=1` once the service can
work, `WATCHDOG=1` at least every `$WATCHDOG_USEC / 2` while it still can (so a stuck service
is restarted), `STOPPING=1` on the way out. Outside systemd every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._addr = addr or None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        interval = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else None
        if pid.isdigit() and int(pid) != os.getpid():
            interval = None
        self.watchdog_interval = interval
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._addr else None

    def notify(self, message: str) -> None:
        if self._sock is None or self._addr is None:
            return
        with contextlib.suppress(OSError):  # systemd gone (stopping): nothing to tell
            self._sock.sendto(message.encode(), self._addr)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
