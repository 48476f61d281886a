"""Exponential reconnect delay, shared by the room's links (the monitor's transports, the
MQTT link's connect thread). Kept apart so a room imports it without pyserial or paho."""

from __future__ import annotations


class Backoff:
    """Exponential reconnect delay, reset after a session that worked."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max(max_s, min_s)
        self.delay = min_s

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self.delay = self.min_s
