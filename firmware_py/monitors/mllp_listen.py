"""The MLLP (HL7 over TCP) listener transport: monitors connect and push HL7; every message is
ACKed on the connection it came on.

The MLLP listener is the room's only open port, so it admits only the monitor: a peer outside
`allowed_peers` (addresses or networks; empty = anyone, for loopback and the bench) is closed
at once; at most `max_connections` are served; a connection that brings no complete HL7
message for `idle_timeout_s` is closed (TCP keepalive also ends half-open ones); and when all
slots are taken, a new peer takes the slot of the oldest connection that never brought an HL7
message (else of the one whose last message is the oldest), so squatters, first or in a rapid
stream, cannot lock the real monitor out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from firmware_py.monitors.transports import (
    MAX_MLLP_CONNECTIONS,
    MLLP_IDLE_TIMEOUT_S,
    READ_TIMEOUT_S,
    Handler,
    SessionFactory,
    StateCallback,
    ThreadedTransport,
    parse_host_port,
    parse_peers,
    peer_allowed,
    recv_chunk,
    set_tcp_keepalive,
)


@dataclass
class _MllpConn:
    thread: threading.Thread
    peer: str
    last_message_at: float  # monotonic: accepted, then each time a whole HL7 message came
    proven: bool = False  # it has brought a whole HL7 message
    evicted: bool = False


class MllpListenTransport(ThreadedTransport):
    """Listens on `host:port`; monitors connect and push HL7; every message is ACKed."""

    kind = "mllp-listen"

    def __init__(self, address: str, new_session: SessionFactory, on_state: StateCallback,
                 *, allowed_peers: Sequence[str] = (),
                 max_connections: int = MAX_MLLP_CONNECTIONS,
                 idle_timeout_s: float = MLLP_IDLE_TIMEOUT_S, **kwargs: float) -> None:
        super().__init__(address, new_session, on_state, **kwargs)
        self.host, self.port = parse_host_port(address)
        self.allowed = parse_peers(allowed_peers)
        self.max_connections = max(1, max_connections)
        self.idle_timeout_s = idle_timeout_s
        self.bound_port: int | None = None
        self.listening = threading.Event()
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _MllpConn] = {}
        self._server: socket.socket | None = None
        self.refused_peers = 0  # not in allowed_peers
        self.evicted = 0  # gave their slot to a newer peer
        self.idle_closed = 0  # no HL7 message for idle_timeout_s

    def _interrupt(self) -> None:
        with self._lock:
            socks = list(self._conns)
        if self._server is not None:
            socks.append(self._server)  # ends a blocked accept() at once (Linux)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout: float = 3.0) -> bool:
        done = super().stop(timeout)
        with self._lock:
            threads = [c.thread for c in self._conns.values()]
        for thread in threads:
            thread.join(timeout)
        return done and not any(t.is_alive() for t in threads)

    def _session(self) -> bool:
        server = socket.create_server((self.host, self.port), reuse_port=False)
        self._server = server
        try:
            server.settimeout(READ_TIMEOUT_S)  # a backstop: stop() shuts it down
            self.bound_port = int(server.getsockname()[1])
            self.listening.set()
            while not self.stopping.is_set():
                try:
                    conn, peer = server.accept()
                except TimeoutError:
                    continue
                self._admit(conn, str(peer[0]), f"{peer[0]}:{peer[1]}")
            return True
        finally:
            self.listening.clear()
            self._server = None
            server.close()

    def _admit(self, conn: socket.socket, host: str, peer: str) -> None:
        if not peer_allowed(host, self.allowed):
            with self._lock:
                self.refused_peers += 1
            conn.close()
            return
        with self._lock:
            # a connection already told to give way holds no slot, even while its thread is
            # still closing it (under load it may still be listed when the next peer comes)
            live = [kv for kv in self._conns.items() if not kv[1].evicted]
            if len(live) >= self.max_connections:
                # Full: a connection that never brought an HL7 message gives way first (the
                # oldest of them), else the one whose last message is the oldest.
                sock, oldest = min(live, key=lambda kv: (kv[1].proven, kv[1].last_message_at))
                oldest.evicted = True
                self.evicted += 1
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            thread = threading.Thread(
                target=self._serve, args=(conn, peer), name="monitor-mllp-conn", daemon=True
            )
            self._conns[conn] = _MllpConn(thread, peer, time.monotonic())
        thread.start()

    def _serve(self, conn: socket.socket, peer: str) -> None:
        reason = "closed"
        try:
            conn.settimeout(READ_TIMEOUT_S)
            set_tcp_keepalive(conn)
            handler = self.new_session()
            self.on_state(True, f"monitor {peer} connected")
            self._pump(conn, handler)
        except OSError as exc:
            reason = f"monitor {peer}: {type(exc).__name__}: {exc}"
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(conn, None)
                remaining = len(self._conns)
            if remaining == 0:
                self.on_state(False, reason[:200])

    def _pump(self, conn: socket.socket, handler: Handler) -> None:
        """`pump`, plus the idle timeout: a whole HL7 message (it gets an ACK) resets it."""
        while not self.stopping.is_set():
            with self._lock:
                state = self._conns.get(conn)
                if state is None or state.evicted:
                    raise ConnectionError("gave its slot to a newer connection")
                idle = time.monotonic() - state.last_message_at
            if idle > self.idle_timeout_s:
                with self._lock:
                    self.idle_closed += 1
                raise TimeoutError(f"no HL7 message for {self.idle_timeout_s:g} s")
            # wake at the idle limit, not before (no ticking while the monitor is quiet)
            conn.settimeout(min(READ_TIMEOUT_S, self.idle_timeout_s - idle + 0.01))
            data = recv_chunk(conn)
            if data is None:
                continue
            replies = handler(data)
            if replies:
                with self._lock:
                    state.last_message_at = time.monotonic()
                    state.proven = True
                conn.sendall(replies)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "refused_peers": self.refused_peers,
                "evicted": self.evicted,
                "idle_closed": self.idle_closed,
            }
