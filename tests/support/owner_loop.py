"""An owner's loop for a `MonitorLink` with `owner_wake`, as the room daemon runs it: one
`select` on the daemon's `Inbox` and the link's open port, `service()` when it is readable."""

from __future__ import annotations

import select
import threading
from typing import Any

from controller.inbox import Inbox

MAX_ROUNDS = 100_000  # bounded: a test's link reads far fewer chunks


class OwnerLoop:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.threads: set[str] = set()  # the threads readings arrived on
        self._stop = False
        self._thread: threading.Thread | None = None

    def run(self, link: Any) -> None:
        self._thread = threading.Thread(target=self._loop, args=(link,), name="owner")
        self._thread.start()

    def _loop(self, link: Any) -> None:
        for _ in range(MAX_ROUNDS):
            if self._stop:
                return
            fd = link.fileno()
            waits: list[Any] = [self.inbox] if fd is None else [self.inbox, fd]
            ready, _, _ = select.select(waits, [], [], 5.0)
            if self.inbox in ready:
                self.inbox.clear_wakes()
            if fd is not None and fd in ready:
                link.service()

    def stop(self) -> None:
        if self._stop:
            return
        self._stop = True
        self.inbox.wake()
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive()
        self.inbox.close()
