"""The room daemon's one wait: a `select` on its inbox, the MQTT socket and the monitor's port.

How this works: the daemon's loop calls `wait(round_at)` between rounds. It steps the status
LED, sleeps until an event is posted, broker traffic or a monitor's bytes arrive, the LED's
next change is due or `round_at` comes, then does the I/O on this thread: the monitor's
bytes go to its parser (readings are posted from here), paho reads and writes its packets
(its callbacks post from here). It returns True when a round is due: an event came or
`round_at` passed. Broker traffic nothing waits on (a PUBACK of telemetry, a PINGRESP), the
link's keepalive and the LED's cycle need no round (issue 17: one wake-up per reading).
A bug in this I/O is logged and counted (`on_error`), never fatal.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from typing import Any

from contract.vitals import Reading
from controller.config import RoomConfig
from controller.inbox import Inbox
from controller.mqtt_link import MqttLink
from controller.room_hardware import RoomHardware

log = logging.getLogger(__name__)

ROUND_EARLY_S = 0.001  # a deadline this close counts as reached (select's rounding)


def make_monitor(
    config: RoomConfig, on_reading: Callable[[Reading], None], wake: Callable[[], None]
) -> Any:
    """The room's `MonitorLink` from its config (None without a monitor): a serial port or
    TCP connection is read through `IoWait` on the loop's thread (`wake` when one opens), an
    MLLP listener on its own threads."""
    m = config.monitor
    if m.protocol is None or m.address is None:
        return None
    from firmware_py.monitors.dialect import read_map_file
    from firmware_py.monitors.link import MonitorLink

    local_map = read_map_file(m.dialect_map) if m.dialect_map is not None else None
    return MonitorLink(
        m.protocol,
        m.transport,
        m.address,
        on_reading,
        baudrate=m.baudrate,
        dialect=m.dialect,
        dialect_map=local_map,
        allowed_peers=m.allowed_peers,
        max_connections=m.max_connections,
        idle_timeout_s=m.idle_timeout_s,
        owner_wake=wake,
    )


class IoWait:
    def __init__(
        self,
        events: Inbox,
        link: MqttLink,
        monitor: Any,
        hardware: RoomHardware,
        on_error: Callable[[str], None],
    ) -> None:
        self.events = events
        self.link = link
        self.monitor = monitor  # a MonitorLink reading through this loop, or None
        self.hardware = hardware
        self._on_error = on_error

    def wait(self, round_at: float) -> bool:
        """Sleep until an event, broker traffic, a reading or `round_at`; do the I/O; True
        when a round is due (see the module's docstring)."""
        mono = time.monotonic()
        timeout = round_at - mono
        led = self.hardware.step_status(mono)
        if led is not None:  # a heartbeat's change may wait for the next reading's wake-up
            timeout = min(timeout, led + self.hardware.status_late_s)
        self.events.quiet = False  # before the last look at the queue (see Inbox)
        if not self.events.empty():
            timeout = 0.0
        sock = self.link.fileno()
        port = self.monitor.fileno() if self.monitor is not None else None
        rl: list[Any] = [self.events]
        if sock is not None:
            rl.append(sock)
        if port is not None:
            rl.append(port)
        wl = [sock] if sock is not None and self.link.want_write() else []
        try:
            ready_r, ready_w, _ = select.select(rl, wl, [], self.link.timeout(max(0.0, timeout)))
        except (OSError, ValueError):  # a socket closed under us: a bug, never a crash
            self._error(f"waiting on {rl!r}")
            ready_r, ready_w, _ = select.select([self.events], [], [], min(1.0, max(0.0, timeout)))
            sock = port = None
        self.events.quiet = True
        if self.events in ready_r:
            self.events.clear_wakes()
        if port is not None and port in ready_r:
            self._guarded("reading the monitor", self.monitor.service)  # posts readings
        if sock is not None:
            readable, writable = sock in ready_r, bool(ready_w)
            self._guarded("the broker link", lambda: self.link.service(readable, writable))
        return not self.events.empty() or time.monotonic() >= round_at - ROUND_EARLY_S

    def read_link(self) -> None:
        """Read what the broker sent meanwhile (the end of a round: the PUBACK of what it
        published has usually arrived, so the loop need not wake for it)."""
        self._guarded("the broker link", lambda: self.link.service(True, False))

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            self._error(what)

    def _error(self, what: str) -> None:
        log.exception("internal error in %s", what)
        self._on_error(what)
