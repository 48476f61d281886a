"""Byte transports for monitor links: serial (pyserial), TCP client, MLLP TCP listener.

How this works: each transport runs its own thread(s) that own the port or socket. For
every open port or accepted connection it asks `new_session()` for a handler (a fresh
parser behind it, so framing state never leaks from one connection to the next), then
calls `handler(data) -> replies` for every chunk read and writes the replies back (the
HL7 ACKs; empty for Masimo and Nonin). When the port vanishes or the peer goes away it
reports `on_state(False, reason)` and retries with exponential backoff
(`reconnect_min_s` doubling to `reconnect_max_s`); waits are on the stop event, so
`stop()` returns promptly. `stop()` joins its threads with a bounded timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import serial

Handler = Callable[[bytes], bytes]
SessionFactory = Callable[[], Handler]
StateCallback = Callable[[bool, str], None]
READ_TIMEOUT_S = 0.1
MAX_MLLP_CONNECTIONS = 4


def parse_host_port(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; ValueError with the address in the message."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


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


class ThreadedTransport:
    """Base: one supervisor thread running `_session()` again and again until stopped."""

    kind = "base"

    def __init__(
        self,
        address: str,
        new_session: SessionFactory,
        on_state: StateCallback,
        *,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
    ) -> None:
        self.address = address
        self.new_session = new_session
        self.on_state = on_state
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("transport already started")
        self._thread = threading.Thread(
            target=self._supervise, name=f"monitor-{self.kind}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop and join; True when every thread ended within `timeout`."""
        self.stopping.set()
        self._interrupt()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _interrupt(self) -> None:
        """Unblock a read in progress (subclasses close their port or socket)."""

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            worked = False
            try:
                worked = self._session()
                reason = "closed"
            except OSError as exc:  # serial.SerialException is an OSError too
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not end supervision silently
                reason = f"unexpected {type(exc).__name__}: {exc}"
            self.on_state(False, reason[:200])
            if worked:
                self.backoff.reset()
            if self.stopping.wait(self.backoff.next()):
                break

    def _session(self) -> bool:
        """Open, read until the port or peer goes away; True if it was ever open."""
        raise NotImplementedError


class SerialTransport(ThreadedTransport):
    """A serial port (prefer a stable `/dev/serial/by-id/...` path); the thread owns it."""

    kind = "serial"

    def __init__(self, address: str, new_session: SessionFactory, on_state: StateCallback,
                 *, baudrate: int = 9600, **kwargs: float) -> None:
        super().__init__(address, new_session, on_state, **kwargs)
        self.baudrate = baudrate
        self._port: Any = None

    def _interrupt(self) -> None:
        port = self._port
        if port is not None:
            with contextlib.suppress(Exception):
                port.cancel_read()

    def _session(self) -> bool:
        port = serial.Serial(self.address, self.baudrate, timeout=READ_TIMEOUT_S)
        self._port = port
        try:
            handler = self.new_session()
            self.on_state(True, f"opened {self.address}")
            while not self.stopping.is_set():
                data = port.read(port.in_waiting or 1)
                if data:
                    replies = handler(bytes(data))
                    if replies:
                        port.write(replies)
            return True
        finally:
            self._port = None
            with contextlib.suppress(Exception):
                port.close()


class TcpClientTransport(ThreadedTransport):
    """Connects to a serial-to-network bridge (`host:port`) and reads its byte stream."""

    kind = "tcp-client"

    def __init__(self, address: str, new_session: SessionFactory, on_state: StateCallback,
                 **kwargs: float) -> None:
        super().__init__(address, new_session, on_state, **kwargs)
        self.host, self.port = parse_host_port(address)
        self._sock: socket.socket | None = None

    def _interrupt(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _session(self) -> bool:
        sock = socket.create_connection((self.host, self.port), timeout=2.0)
        self._sock = sock
        try:
            sock.settimeout(READ_TIMEOUT_S)
            handler = self.new_session()
            self.on_state(True, f"connected to {self.address}")
            pump(sock, handler, self.stopping)
            return True
        finally:
            self._sock = None
            sock.close()


def pump(sock: socket.socket, handler: Handler, stopping: threading.Event) -> None:
    """Read from `sock` into `handler`, send its replies, until EOF or `stopping`."""
    while not stopping.is_set():
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            raise ConnectionError("peer closed the connection")
        replies = handler(data)
        if replies:
            sock.sendall(replies)


class MllpListenTransport(ThreadedTransport):
    """Listens on `host:port`; monitors connect and push HL7; every message is ACKed."""

    kind = "mllp-listen"

    def __init__(self, address: str, new_session: SessionFactory, on_state: StateCallback,
                 **kwargs: float) -> None:
        super().__init__(address, new_session, on_state, **kwargs)
        self.host, self.port = parse_host_port(address)
        self.bound_port: int | None = None
        self.listening = threading.Event()
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._server: socket.socket | None = None

    def _interrupt(self) -> None:
        with self._lock:
            socks = list(self._conns)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout: float = 3.0) -> bool:
        done = super().stop(timeout)
        with self._lock:
            threads = list(self._conns.values())
        for thread in threads:
            thread.join(timeout)
        return done and not any(t.is_alive() for t in threads)

    def _session(self) -> bool:
        server = socket.create_server((self.host, self.port), reuse_port=False)
        self._server = server
        try:
            server.settimeout(0.2)
            self.bound_port = int(server.getsockname()[1])
            self.listening.set()
            while not self.stopping.is_set():
                try:
                    conn, peer = server.accept()
                except TimeoutError:
                    continue
                self._admit(conn, f"{peer[0]}:{peer[1]}")
            return True
        finally:
            self.listening.clear()
            self._server = None
            server.close()

    def _admit(self, conn: socket.socket, peer: str) -> None:
        with self._lock:
            if len(self._conns) >= MAX_MLLP_CONNECTIONS:
                conn.close()
                return
            thread = threading.Thread(
                target=self._serve, args=(conn, peer), name="monitor-mllp-conn", daemon=True
            )
            self._conns[conn] = thread
        thread.start()

    def _serve(self, conn: socket.socket, peer: str) -> None:
        reason = "closed"
        try:
            conn.settimeout(READ_TIMEOUT_S)
            handler = self.new_session()
            self.on_state(True, f"monitor {peer} connected")
            pump(conn, handler, self.stopping)
        except OSError as exc:
            reason = f"monitor {peer}: {type(exc).__name__}: {exc}"
        finally:
            conn.close()
            with self._lock:
                self._conns.pop(conn, None)
                remaining = len(self._conns)
            if remaining == 0:
                self.on_state(False, reason[:200])

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._conns)
