"""What every sans-IO monitor parser shares: counters and a bounded reading queue.

A parser is fed bytes from one thread (the transport's reader thread) and drained by the
same thread; other threads only read the integer counters, which is safe in CPython. The
queue is bounded: if nobody drains it, the oldest readings are dropped and counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from contract.vitals import Reading

Clock = Callable[[], float]
MAX_QUEUED_READINGS = 256


class MonitorParser(Protocol):
    """The shape the transports and the room daemon rely on."""

    protocol: str
    frames_accepted: int
    frames_rejected: int

    def feed(self, data: bytes) -> None: ...

    def readings(self) -> Iterator[Reading]: ...

    def acks(self) -> Iterator[bytes]: ...


class ParserBase:
    """Counters and the bounded queue of ready readings."""

    protocol = "unknown"

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.frames_accepted = 0
        self.frames_rejected = 0
        self.readings_dropped = 0
        self.bytes_discarded = 0
        self._ready: deque[Reading] = deque()

    def _emit(self, reading: Reading) -> None:
        if len(self._ready) >= MAX_QUEUED_READINGS:
            self._ready.popleft()
            self.readings_dropped += 1
        self._ready.append(reading)

    def readings(self) -> Iterator[Reading]:
        """Drain the readings that are ready (a generator; stops when none are left)."""
        while self._ready:
            yield self._ready.popleft()

    def feed(self, data: bytes) -> None:
        """Take bytes from the device; never raises on their content."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Reading]:
        return self.readings()

    def acks(self) -> Iterator[bytes]:
        """Bytes to send back to the device; only HL7 has any."""
        return iter(())

    def counters(self) -> dict[str, int]:
        return {
            "frames_accepted": self.frames_accepted,
            "frames_rejected": self.frames_rejected,
            "readings_dropped": self.readings_dropped,
            "bytes_discarded": self.bytes_discarded,
        }
