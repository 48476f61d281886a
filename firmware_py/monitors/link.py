"""`MonitorLink`: one bedside monitor, read through one transport, readings to a callback.

How this works: the link picks a transport (transports.py) and gives it a session factory.
Each session is a fresh parser (make_parser) behind a handler that feeds bytes, hands
each Reading to `on_reading` (on the reader thread: the daemon's callback must only
enqueue) and returns the HL7 ACKs for the transport to send. Counters are summed over
sessions under a lock, so `stats()` is safe from any thread. Silence detection (3 s) is
the daemon's job, from `stats()["last_reading_at"]`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from contract.vitals import Reading
from firmware_py.monitors.dialect import AUTO, DialectSet
from firmware_py.monitors.mllp_listen import MllpListenTransport
from firmware_py.monitors.parser_base import Clock
from firmware_py.monitors.parsers import PROTOCOLS, make_parser
from firmware_py.monitors.transports import (
    MAX_MLLP_CONNECTIONS,
    MLLP_IDLE_TIMEOUT_S,
    Handler,
    SerialTransport,
    TcpClientTransport,
    ThreadedTransport,
    parse_host_port,
)

TRANSPORTS: tuple[str, ...] = ("serial", "tcp-client", "mllp-listen")


class MonitorLink:
    """Reads one monitor over `transport` at `address` and calls `on_reading(reading)`."""

    def __init__(
        self,
        protocol: str,
        transport: str,
        address: str,
        on_reading: Callable[[Reading], None],
        *,
        baudrate: int = 9600,
        clock: Clock = time.time,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        on_state: Callable[[bool, str], None] | None = None,
        dialect: str = AUTO,
        dialect_map: Mapping[str, Any] | None = None,
        allowed_peers: Sequence[str] = (),
        max_connections: int = MAX_MLLP_CONNECTIONS,
        idle_timeout_s: float = MLLP_IDLE_TIMEOUT_S,
        owner_wake: Callable[[], None] | None = None,
    ) -> None:
        """`on_state(connected, detail)`, if given, is called on the reader thread whenever
        the port opens or a connection is made (True) or lost (False); like `on_reading`
        it must only enqueue. `allowed_peers`, `max_connections` and `idle_timeout_s` are the
        MLLP listener's (mllp_listen.py): who may connect, how many, how long silent.

        `owner_wake`: the caller's loop reads an open serial port or TCP connection itself
        (`fileno()` to wait on, `service()` when readable; `owner_wake` is called when there
        is a new one to wait on), and `on_reading` runs on that loop's thread. The MLLP
        listener keeps its own threads (several peers, each answered)."""
        if protocol not in PROTOCOLS:
            known = ", ".join(PROTOCOLS)
            raise ValueError(f"unknown monitor protocol {protocol!r}; one of {known}")
        if transport not in TRANSPORTS:
            known = ", ".join(TRANSPORTS)
            raise ValueError(f"unknown monitor transport {transport!r}; one of {known}")
        if transport != "serial":
            parse_host_port(address)  # fail early with a readable message
        self.protocol = protocol
        self.dialect = dialect
        self._dialect_map = dialect_map
        if protocol == "hl7":
            DialectSet(dialect, dialect_map)  # fail early with a readable message
        self.transport = transport
        self.address = address
        self._on_reading = on_reading
        self._state_callback = on_state
        self._clock = clock
        self._lock = threading.Lock()
        self._connected = False
        self._connects = 0
        self._accepted = 0
        self._rejected = 0
        self._readings = 0
        self._bytes = 0
        self._callback_errors = 0
        self._last_reading_at: float | None = None
        self._last_error: str | None = None
        self._started = False
        timing = {"reconnect_min_s": reconnect_min_s, "reconnect_max_s": reconnect_max_s}
        session, state = self._new_session, self._on_state
        self._transport: ThreadedTransport
        if transport == "serial":
            self._transport = SerialTransport(address, session, state, baudrate=baudrate, **timing)
        elif transport == "tcp-client":
            self._transport = TcpClientTransport(address, session, state, **timing)
        else:
            self._transport = MllpListenTransport(
                address,
                session,
                state,
                allowed_peers=allowed_peers,
                max_connections=max_connections,
                idle_timeout_s=idle_timeout_s,
                **timing,
            )
        if transport != "mllp-listen":
            self._transport.owner_wake = owner_wake

    def start(self) -> None:
        """Start the reader thread (returns at once; the port is opened in the thread)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._transport.start()

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop and join the reader threads; True when they ended within `timeout`."""
        done = self._transport.stop(timeout)
        with self._lock:
            self._connected = False
        return done

    def fileno(self) -> int | None:
        """With `owner_wake`: the open port to wait on (None while there is none)."""
        return self._transport.fileno()

    def service(self) -> None:
        """With `owner_wake`: read the port (when `fileno()` is readable)."""
        self._transport.service()

    def wait_listening(self, timeout: float) -> int | None:
        """For `mllp-listen`: wait until bound; the bound port (useful with port 0)."""
        transport = self._transport
        if isinstance(transport, MllpListenTransport) and transport.listening.wait(timeout):
            return transport.bound_port
        return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats: dict[str, Any] = {
                "protocol": self.protocol,
                "transport": self.transport,
                "address": self.address,
                "connected": self._connected,
                "connects": self._connects,
                "frames_accepted": self._accepted,
                "frames_rejected": self._rejected,
                "readings": self._readings,
                "bytes_received": self._bytes,
                "last_reading_at": self._last_reading_at,
                "last_error": self._last_error,
                "callback_errors": self._callback_errors,
            }
        if isinstance(self._transport, MllpListenTransport):
            stats["listening"] = self._transport.listening.is_set()
            stats["bound_port"] = self._transport.bound_port
            stats["connections"] = self._transport.connections
            stats.update(self._transport.counters())
        return stats

    def _on_state(self, connected: bool, detail: str) -> None:
        with self._lock:
            if connected and not self._connected:
                self._connects += 1
            self._connected = connected
            if not connected:
                self._last_error = detail
        if self._state_callback is not None:
            try:
                self._state_callback(connected, detail)
            except Exception:
                with self._lock:
                    self._callback_errors += 1

    def _new_session(self) -> Handler:
        parser = make_parser(
            self.protocol, clock=self._clock, dialect=self.dialect, dialect_map=self._dialect_map
        )
        seen = [0, 0]

        def handle(data: bytes) -> bytes:
            parser.feed(data)
            readings = list(parser.readings())
            replies = b"".join(parser.acks())
            accepted, rejected = parser.frames_accepted, parser.frames_rejected
            with self._lock:
                self._accepted += accepted - seen[0]
                self._rejected += rejected - seen[1]
                self._bytes += len(data)
                self._readings += len(readings)
                if readings:
                    self._last_reading_at = readings[-1].received_at
            seen[0], seen[1] = accepted, rejected
            for reading in readings:
                try:
                    self._on_reading(reading)
                except Exception:  # the daemon's bug must not kill the reader thread
                    with self._lock:
                        self._callback_errors += 1
            return replies

        return handle
