"""One bounded poll for state that has no event to wait on: a database another process
writes, a listener's counters, a server's flag.

`poll(predicate, timeout, what)` asks `predicate()` until it is true and raises TimeoutError
naming `what` at the deadline. Between two questions it waits on a private `threading.Event`
(`Event().wait(interval)`, never `time.sleep`): nothing sets it, so it is a bounded pause that
a later change can turn into a real wake-up by setting it. Prefer a real event (a queue, a
Condition's `wait_for`) wherever the state has one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def poll(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Until `predicate()` is true; TimeoutError (naming `what`) after `timeout` seconds."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        pause.wait(interval)
