"""The daemon's event queue, which also wakes the daemon's `select`.

Any thread may `put` (gpiozero's, the monitor reader's, a signal handler on the main thread);
one thread, the daemon, takes. A `put` writes a byte to a pipe the daemon waits on with its
MQTT socket, so one `select` sleeps until an event, broker traffic or the next deadline,
whichever comes first (issue 17: the room's MQTT I/O runs on the daemon's thread).

While the daemon is awake and will look at the queue before it sleeps again, it sets `quiet`:
puts then skip the pipe (the paho callbacks it runs itself post several events per packet).
That loses no wake-up: the daemon clears `quiet` before it looks at the queue for the last
time, and a put appends before it reads `quiet`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import weakref


class Inbox:
    def __init__(self) -> None:
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # the write end lives as long as the inbox: a thread that still holds `put` after
        # `close()` writes to a pipe without a reader (EPIPE, ignored), never to a reused fd
        weakref.finalize(self, os.close, self._w)
        self.quiet = False

    def put(self, item: object) -> None:
        self._items.put(item)
        if not self.quiet:
            self.wake()

    def wake(self) -> None:
        """Make the daemon's next (or current) `select` return."""
        with contextlib.suppress(BlockingIOError, OSError):  # full: it is readable already
            os.write(self._w, b"\0")

    def fileno(self) -> int:
        return self._r

    def clear_wakes(self) -> None:
        """Read the pipe empty (bounded: 64 KiB is the pipe's size)."""
        for _ in range(16):
            try:
                if len(os.read(self._r, 4096)) < 4096:
                    return
            except (BlockingIOError, OSError):
                return

    def empty(self) -> bool:
        return self._items.empty()

    def get_nowait(self) -> object:
        return self._items.get_nowait()

    def close(self) -> None:
        """Close the daemon's end (see `__init__` for the other)."""
        if self._r >= 0:
            r, self._r = self._r, -1
            with contextlib.suppress(OSError):
                os.close(r)
