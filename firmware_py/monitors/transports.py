"""Byte transports for monitor links: serial (pyserial) and TCP client; the base the MLLP
listener (`mllp_listen.py`) shares.

How this works: each transport runs its own thread(s) that own the port or socket. For
every open port or accepted connection it asks `new_session()` for a handler (a fresh
parser behind it, so framing state never leaks from one connection to the next), then
calls `handler(data) -> replies` for every chunk read and writes the replies back (the
HL7 ACKs; empty for Masimo and Nonin). When the port vanishes or the peer goes away it
reports `on_state(False, reason)` and retries with exponential backoff
(`reconnect_min_s` doubling to `reconnect_max_s`); waits are on the stop event, so
`stop()` returns promptly. `stop()` joins its threads with a bounded timeout.

The MLLP listener (`mllp_listen.py`) builds on the same base.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import serial

from contract.backoff import Backoff

Handler = Callable[[bytes], bytes]
SessionFactory = Callable[[], Handler]
StateCallback = Callable[[bool, str], None]
# A backstop only: `stop()` interrupts a blocked read (cancel_read / shutdown), so a link
# need not wake to look at `stopping` (issue 17: no busy ticking). Longer than any monitor's
# reading period: a 1 s timeout raced a 1 Hz monitor and woke the reader about twice per
# reading (measured: 2.4 context switches a second, 1.0 with this).
READ_TIMEOUT_S = 10.0
MAX_MLLP_CONNECTIONS = 4
MLLP_IDLE_TIMEOUT_S = 60.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_peers(peers: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or networks (`10.1.2.3`, `10.1.2.0/28`); ValueError names the bad one."""
    nets = []
    for peer in peers:
        try:
            nets.append(ipaddress.ip_network(peer.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"allowed peer {peer!r} is not an IP address or network") from exc
    return tuple(nets)


def peer_allowed(host: str, allowed: tuple[Network, ...]) -> bool:
    if not allowed:
        return True
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in allowed)


def set_tcp_keepalive(
    sock: socket.socket, idle_s: int = 10, interval_s: int = 5, count: int = 3
) -> None:
    """Let the kernel end a half-open connection (peer gone without FIN) in ~25 s."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


def parse_host_port(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`; ValueError with the address in the message."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass
class _Held:
    """An open port or connection the owner's loop reads (see `ThreadedTransport.owner_wake`)."""

    fd: int
    read: Callable[[], bytes]  # BlockingIOError: nothing there yet; b"": closed
    write: Callable[[bytes], None]
    handler: Handler


class ThreadedTransport:
    """Base: one supervisor thread running `_session()` again and again until stopped.

    With `owner_wake` set (before `start`), a serial port or TCP connection, once open, is
    handed to the owner's loop instead of being read on this thread (issue 17: a room reads
    its monitor on the daemon's thread, one wake-up per reading instead of two): the owner
    waits on `fileno()` with its other sockets and calls `service()` when it is readable.
    This thread keeps opening, backing off and closing; it sleeps while the owner reads.
    """

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
        self.owner_wake: Callable[[], None] | None = None
        self._held: _Held | None = None
        self._released = threading.Event()
        self._release_reason = ""

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
        self._released.set()
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

    # -- an owner's loop reads (owner_wake set) ---------------------------------------

    def _hand_over(self, held: _Held) -> None:
        """Let the owner read `held` until it fails or the transport stops (this thread
        sleeps meanwhile); a failure is raised here, so `_supervise` reconnects."""
        assert self.owner_wake is not None
        self._released.clear()
        self._release_reason = ""
        if self.stopping.is_set():
            return
        self._held = held
        self.owner_wake()
        self._released.wait()  # set by the owner (`_release`) or by `stop()`
        self._held = None
        if self._release_reason and not self.stopping.is_set():
            raise ConnectionError(self._release_reason)

    def fileno(self) -> int | None:
        """The open port's fd for the owner to wait on (None: not open, or not handed over)."""
        held = self._held
        return None if held is None else held.fd

    def service(self) -> None:
        """The owner's loop: read what came, feed the session, send its replies."""
        held = self._held
        if held is None:
            return
        try:
            data = held.read()
        except BlockingIOError:
            return
        except OSError as exc:
            self._release(f"{type(exc).__name__}: {exc}")
            return
        if not data:
            self._release("peer closed the connection")
            return
        replies = held.handler(data)
        if replies:
            try:
                held.write(replies)
            except OSError as exc:
                self._release(f"{type(exc).__name__}: {exc}")

    def _release(self, reason: str) -> None:
        self._held = None
        self._release_reason = reason
        self._released.set()


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
            if self.owner_wake is not None:  # pyserial keeps the fd non-blocking
                fd = port.fileno()
                self._hand_over(_Held(fd, lambda: os.read(fd, 65536), port.write, handler))
                return True
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
            handler = self.new_session()
            self.on_state(True, f"connected to {self.address}")
            if self.owner_wake is not None:
                set_tcp_keepalive(sock)  # nobody polls a silent peer: the kernel ends it
                sock.setblocking(False)
                self._hand_over(_Held(sock.fileno(), lambda: sock.recv(65536),
                                      lambda data: send_all(sock, data), handler))
                return True
            sock.settimeout(READ_TIMEOUT_S)
            pump(sock, handler, self.stopping)
            return True
        finally:
            self._sock = None
            sock.close()


def send_all(sock: socket.socket, data: bytes, timeout: float = 2.0) -> None:
    """Send on a non-blocking socket (a reply: small), waiting up to `timeout` for room."""
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    finally:
        sock.setblocking(False)


def recv_chunk(sock: socket.socket) -> bytes | None:
    """What the peer sent (None: the read timed out); ConnectionError when it closed."""
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return None
    if not data:
        raise ConnectionError("peer closed the connection")
    return data


def pump(sock: socket.socket, handler: Handler, stopping: threading.Event) -> None:
    """Read from `sock` into `handler`, send its replies, until EOF or `stopping`."""
    while not stopping.is_set():
        data = recv_chunk(sock)
        if data is None:
            continue
        replies = handler(data)
        if replies:
            sock.sendall(replies)
