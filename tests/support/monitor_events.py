"""What a `MonitorLink` reports (readings, link up/down), as queues a test blocks on with
timeouts."""

from __future__ import annotations

import queue
import threading

from contract.vitals import Reading

WAIT = 10.0


class Events:
    """Readings and link-state changes as queues, so tests block on them with timeouts."""

    def __init__(self) -> None:
        self.readings: queue.Queue[Reading] = queue.Queue()
        self.states: queue.Queue[tuple[bool, str]] = queue.Queue()
        self.threads: set[str] = set()  # the threads readings were handed over on

    def on_reading(self, reading: Reading) -> None:
        self.threads.add(threading.current_thread().name)
        self.readings.put(reading)

    def on_state(self, up: bool, detail: str) -> None:
        self.states.put((up, detail))

    def reading(self) -> Reading:
        return self.readings.get(timeout=WAIT)

    def state(self, want: bool) -> str:
        for _ in range(50):  # bounded: skip repeated failures while reconnecting
            up, detail = self.states.get(timeout=WAIT)
            if up is want:
                return detail
        raise AssertionError(f"link never became connected={want}")
