"""How the board is served: uvicorn (h11) with limits, so one bad client cannot take it down.

How this works: `serve_config()` builds every uvicorn server of the board (the board itself,
the HTTPS redirect, the tests' in-thread board) with `LimitedH11Protocol`, uvicorn's own h11
protocol plus three rules it lacks:

- **Request deadline.** From the moment a connection waits for a request (it opened, or the
  previous response ended), the whole request (line, headers and body) must arrive within
  `request_timeout_s`; else the server answers 408 and closes. A slowloris client that sends
  half a header and then a byte now and then holds nothing for long. Idle keep-alive
  connections close after `keep_alive_s` (uvicorn's own timer); headers are at most
  `max_header_bytes` (h11's limit, 400 beyond it).
- **Connection budget.** At most `max_connections` open connections (never more than the
  process's open-files limit leaves room for: see `connection_budget`), and at most
  `max_per_address` from one client address. A new connection over either bound evicts the
  oldest connection that is still *waiting* for its request (a slow or idle one, never one
  being answered or an open live stream); only when none is waiting is the new one refused
  with 503 and `Retry-After`. So a thousand slow sockets (half-sent headers or a body that
  trickles) cannot keep a nurse out: her connection takes the place of the oldest of them.
- The open-files soft limit is raised to the hard limit at start (`raise_open_files_limit`),
  since systemd's default soft limit (1024) is what a thousand slow clients used to exhaust;
  the listen backlog (`ACCEPT_BURST`) is also how many connections asyncio accepts at once,
  so the budget keeps room for that burst and the process never runs out of files (where
  asyncio would stop accepting, nurse included, for a second at a time).

What this does not cover: a TLS handshake is asyncio's until it completes (its own 60 s
handshake timeout); bodies are bounded by `limits.BodyLimit` in the application.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .security import ServeLimits

__all__ = ["ServeLimits", "connection_table", "serve_config"]

log = logging.getLogger("roomctl.board")

# asyncio accepts up to `backlog` connections per wake-up before our protocol can evict any,
# and a connection it drops frees its file one loop turn later: so the files kept free beyond
# the connection budget cover two such bursts plus the process's own (db, MQTT, PDF pipes).
ACCEPT_BURST = 100
RESERVED_FILES = 2 * ACCEPT_BURST + 56


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_budget(limits: ServeLimits, open_files: int) -> int:
    """How many client connections may be open: the configured bound, within the files left."""
    return max(16, min(limits.max_connections, open_files - RESERVED_FILES))


class ConnectionTable:
    """The open connections of one server, oldest first, with a count per client address."""

    def __init__(self, max_connections: int, max_per_address: int):
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.open: dict[LimitedH11Protocol, None] = {}  # insertion order: oldest first
        self.per_address: Counter[str] = Counter()
        self.evicted = 0
        self.refused = 0

    def admit(self, conn: LimitedH11Protocol) -> bool:
        """Make room for `conn` (evicting waiting connections) and add it; False: refuse it."""
        crowded = self.per_address[conn.address] >= self.max_per_address
        if crowded and not self._evict_one(conn.address):
            self.refused += 1
            return False
        if len(self.open) >= self.max_connections and not self._evict_one(None):
            self.refused += 1
            return False
        self.open[conn] = None
        self.per_address[conn.address] += 1
        return True

    def remove(self, conn: LimitedH11Protocol) -> None:
        if conn in self.open:
            del self.open[conn]
            self.per_address[conn.address] -= 1
            if self.per_address[conn.address] <= 0:
                del self.per_address[conn.address]

    def _evict_one(self, address: str | None) -> bool:
        for conn in self.open:  # bounded by max_connections
            if (address is None or conn.address == address) and conn.waiting_for_request():
                self.remove(conn)
                conn.evict()
                self.evicted += 1
                return True
        return False


_RAW_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 45\r\n\r\n"
    b"the request did not arrive in time: closed.\r\n"
)
_RAW_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 5\r\nconnection: close\r\ncontent-length: 41\r\n\r\n"
    b"too many connections: try again in 5 s.\r\n"
)


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a shared connection table.

    A subclass per server is made by `protocol_class` (the table and limits are class
    attributes, since uvicorn builds the protocol itself)."""

    table: ClassVar[ConnectionTable]
    request_timeout_s: ClassVar[float]

    address: str = "?"
    _deadline: asyncio.TimerHandle | None = None
    _admitted: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else "?"
        if not self.table.admit(self):
            log.warning("connection from %s refused: too many connections", self.address)
            transport.write(_RAW_503)
            transport.close()
            return
        self._admitted = True
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._admitted:
            self.table.remove(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._their_state() not in (h11.IDLE, h11.SEND_BODY):
            self._cancel_deadline()  # the whole request is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()  # the next request on this connection gets its own deadline

    # -- the rules --------------------------------------------------------------------
    def _their_state(self) -> Any:
        return self.conn.their_state

    def waiting_for_request(self) -> bool:
        """Its request has not fully arrived (nothing, part of the line and headers, or part
        of the body) and nothing is being answered on it: a slow or idle connection."""
        state = self._their_state()
        if state is h11.IDLE:
            return self.cycle is None or self.cycle.response_complete
        return state is h11.SEND_BODY and (self.cycle is None or not self.cycle.response_started)

    def evict(self) -> None:
        """Drop it now to make room for a new connection (the file is freed at once)."""
        self._admitted = False
        self._cancel_deadline()
        self.transport.abort()

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._request_timed_out)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._their_state() in (h11.IDLE, h11.SEND_BODY):
            cycle = self.cycle
            if cycle is None or not cycle.response_started or cycle.response_complete:
                self.transport.write(_RAW_408)  # no answer is half-written on it
            self.transport.close()


def connection_table(limits: ServeLimits) -> ConnectionTable:
    """The connection table of one process: every server of the board shares it, since they
    share the process's open files (the HTTPS board and its HTTP redirect)."""
    budget = connection_budget(limits, raise_open_files_limit())
    return ConnectionTable(budget, limits.max_per_address)


def protocol_class(limits: ServeLimits, table: ConnectionTable) -> type[LimitedH11Protocol]:
    """A protocol class for one server, counting its connections in `table`."""
    return type(
        "BoardH11Protocol",
        (LimitedH11Protocol,),
        {"table": table, "request_timeout_s": limits.request_timeout_s},
    )


def serve_config(
    app: Any,
    limits: ServeLimits | None = None,
    table: ConnectionTable | None = None,
    **kwargs: Any,
) -> uvicorn.Config:
    """A uvicorn Config with the board's limits (kwargs: host, port, TLS, log level...).
    Servers in one process pass the same `table` (`connection_table`)."""
    limits = limits or ServeLimits()
    return uvicorn.Config(
        app,
        http=protocol_class(limits, table or connection_table(limits)),
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=ACCEPT_BURST,
        **kwargs,
    )
