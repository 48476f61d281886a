"""Simulated bedside monitors on a pty or TCP, driven by the ketamine session trace.

How this works: `DeviceSignal` is pure: for a real time t (seconds since start) it says
what the device sends: the trace at `t * speed`, encoded for the protocol, with the fault
applied. Runners pace it in real time and own the I/O:

* `run_pty`: a pseudo-terminal; the slave path is printed first (and kept in a symlink
  with `pty_link`, like /dev/serial/by-id). Unplug closes the pty; replugging opens a new
  one (a new path line is printed, the symlink is moved).
* `run_tcp_server` (Masimo, Nonin): plays a serial-to-network bridge: listens on
  HOST:PORT, the room connects as `tcp-client`. The bound address is printed first.
* `run_hl7_client` (HL7): plays a networked monitor: connects to the room's MLLP listener,
  sends ORU^R01 and waits for each ACK (re-sending an unacknowledged message, as GE does).

Faults repeat every 30 s of real time, from 10 s to 18 s: `garbage` (random bytes between
frames; a junk line for Masimo), `sensor-off` (no oximetry values, each protocol's way),
`unplug` (port or connection gone). Everything random comes from `seed`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import socket
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from firmware_py.monitors import device_encoders as enc
from firmware_py.monitors.mllp import mllp_frame
from firmware_py.monitors.session_trace import KetamineTrace
from firmware_py.monitors.transports import parse_host_port

FAULTS = ("garbage", "sensor-off", "unplug")
FAULT_PERIOD_S = 30.0
FAULT_START_S = 10.0
FAULT_LEN_S = 8.0
PERIOD_S = {"masimo": 1.0, "nonin-df2": 1 / 3, "nonin-df7": 1 / 3, "hl7": 1.0}
ACK_TIMEOUT_S = 5.0
HL7_DIALECTS = ("mdc", "mindray-legacy")
MAX_RESENDS = 3


@dataclass(frozen=True)
class SimulatorOptions:
    protocol: str
    speed: float = 1.0
    desat: bool = False
    hypertensive: bool = False
    fault: str | None = None
    duration: float | None = None
    seed: int = 0
    dialect: str = "mdc"  # hl7: "mdc" (GE-style PCD-01) or "mindray-legacy"
    start_s: float = 0.0
    fault_every_s: float = FAULT_PERIOD_S
    fault_start_s: float = FAULT_START_S
    fault_len_s: float = FAULT_LEN_S


class DeviceSignal:
    """What the simulated device sends at each tick (pure apart from the wall clock)."""

    def __init__(self, opts: SimulatorOptions) -> None:
        if opts.protocol not in PERIOD_S:
            raise ValueError(f"unknown protocol {opts.protocol!r}")
        if opts.fault is not None and opts.fault not in FAULTS:
            raise ValueError(f"unknown fault {opts.fault!r}")
        if opts.speed <= 0:
            raise ValueError("speed must be > 0")
        self.opts = opts
        self.period = PERIOD_S[opts.protocol]
        self.trace = KetamineTrace(opts.seed, desat=opts.desat, hypertensive=opts.hypertensive)
        if opts.dialect not in HL7_DIALECTS:
            raise ValueError(f"unknown hl7 dialect {opts.dialect!r}")
        self.rng = random.Random(opts.seed ^ 0x5EED)
        self.sent = 0
        self._last_cuff: float | None = None

    def fault_active(self, real_t: float) -> bool:
        o = self.opts
        if o.fault is None:
            return False
        return o.fault_start_s <= real_t % o.fault_every_s < o.fault_start_s + o.fault_len_s

    def unplugged(self, real_t: float) -> bool:
        return self.opts.fault == "unplug" and self.fault_active(real_t)

    def hl7_frames(self, real_t: float, wall: float) -> list[bytes]:
        """The MLLP frames of the tick at `real_t`: one PCD-01 message, or Mindray legacy's
        one message per module (plus the NIBP when the cuff has measured again)."""
        if self.opts.dialect == "mdc":
            return [self.chunk(real_t, wall)]
        point = self.trace.at(self.opts.start_s + real_t * self.opts.speed)
        off = self.opts.fault == "sensor-off" and self.fault_active(real_t)
        nibp_time = None
        if point.nibp_t != self._last_cuff:
            self._last_cuff = point.nibp_t
            nibp_time = wall - (point.t - point.nibp_t) / self.opts.speed
        messages = enc.mindray_legacy_messages(point, nibp_time, sensor_off=off)
        self.sent += len(messages)
        return [mllp_frame(m) for m in messages]

    def chunk(self, real_t: float, wall: float) -> bytes:
        """The bytes for the tick at `real_t` (device clock `wall`)."""
        point = self.trace.at(self.opts.start_s + real_t * self.opts.speed)
        off = self.opts.fault == "sensor-off" and self.fault_active(real_t)
        protocol = self.opts.protocol
        self.sent += 1
        if protocol == "masimo":
            data = enc.masimo_line(point, wall, sensor_off=off)
        elif protocol.startswith("nonin"):
            data = enc.nonin_packet(protocol[-3:], point, self.sent * 25, sensor_off=off)
        else:
            # the cuff measured the NIBP at `nibp_t` of the trace: that many trace seconds
            # ago, i.e. (t - nibp_t) / speed seconds of the device clock
            nibp_wall = wall - (point.t - point.nibp_t) / self.opts.speed
            data = enc.hl7_frame(
                point, f"SIM{self.sent:08d}", wall, sensor_off=off, nibp_time=nibp_wall
            )
        if self.opts.fault == "garbage" and self.fault_active(real_t):
            junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 24)))
            if protocol == "masimo":  # line noise between records: a junk line
                junk += b"\r\n"
            data = junk + data
        return data


class Pacer:
    """Ticks at the device period until `duration` or `stop`; waits on the stop event."""

    def __init__(self, period: float, duration: float | None, stop: threading.Event) -> None:
        self.period, self.duration, self.stop = period, duration, stop
        self.start = time.monotonic()
        self.k = 0

    def __iter__(self) -> Pacer:
        return self

    def __next__(self) -> float:
        real_t = self.k * self.period
        if self.stop.is_set() or (self.duration is not None and real_t >= self.duration):
            raise StopIteration
        delay = self.start + real_t - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            raise StopIteration
        self.k += 1
        return real_t


def say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


class PtyPort:
    """The device end of a pseudo-terminal (master), with the slave kept open."""

    def __init__(self, link: Path | None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        flags = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.path = os.ttyname(self.slave)
        if link is not None:
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            tmp.replace(link)

    def write(self, data: bytes) -> bool:
        try:
            os.write(self.master, data)
            return True
        except (BlockingIOError, OSError):
            return False  # nobody reading and the buffer is full: a real line drops it too

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def run_pty(
    opts: SimulatorOptions, out: TextIO, stop: threading.Event, pty_link: Path | None = None
) -> dict[str, int]:
    signal = DeviceSignal(opts)
    stats = {"sent": 0, "dropped": 0, "unplugs": 0}
    port: PtyPort | None = PtyPort(pty_link)
    assert port is not None
    say(out, port.path)
    try:
        for real_t in Pacer(signal.period, opts.duration, stop):
            if signal.unplugged(real_t):
                if port is not None:
                    port.close()
                    port = None
                    stats["unplugs"] += 1
                continue
            if port is None:
                port = PtyPort(pty_link)
                say(out, port.path)
            ok = port.write(signal.chunk(real_t, time.time()))
            stats["sent" if ok else "dropped"] += 1
    finally:
        if port is not None:
            port.close()
        if pty_link is not None:
            pty_link.unlink(missing_ok=True)
    return stats


def run_tcp_server(
    opts: SimulatorOptions, address: str, out: TextIO, stop: threading.Event
) -> dict[str, int]:
    """Masimo/Nonin through a serial-to-network bridge: listen, stream to every client."""
    host, port = parse_host_port(address)
    signal = DeviceSignal(opts)
    stats = {"sent": 0, "dropped": 0, "unplugs": 0, "clients": 0}
    server: socket.socket | None = socket.create_server((host, port))
    assert server is not None
    port = server.getsockname()[1]
    say(out, f"{host}:{port}")
    clients: list[socket.socket] = []
    try:
        for real_t in Pacer(signal.period, opts.duration, stop):
            if signal.unplugged(real_t):
                if server is not None:
                    for c in clients:
                        c.close()
                    clients.clear()
                    server.close()
                    server = None
                    stats["unplugs"] += 1
                continue
            if server is None:
                server = socket.create_server((host, port))
            server.settimeout(0)
            with contextlib.suppress(BlockingIOError):
                while len(clients) < 4:
                    conn, _ = server.accept()
                    conn.settimeout(1.0)
                    clients.append(conn)
                    stats["clients"] += 1
            data = signal.chunk(real_t, time.time())
            for c in list(clients):
                try:
                    c.sendall(data)
                    stats["sent"] += 1
                except OSError:
                    c.close()
                    clients.remove(c)
            if not clients:
                stats["dropped"] += 1
    finally:
        for c in clients:
            c.close()
        if server is not None:
            server.close()
    return stats


def _await_ack(sock: socket.socket, deadline: float) -> bytes | None:
    buf = b""
    while b"\x1c\r" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return None
        if not chunk:
            raise ConnectionError("room closed the connection")
        buf += chunk
    return buf


def run_hl7_client(
    opts: SimulatorOptions, address: str, out: TextIO, stop: threading.Event
) -> dict[str, int]:
    """An HL7 monitor pushing ORU^R01 to the room's MLLP listener, one ACK per message."""
    host, port = parse_host_port(address)
    signal = DeviceSignal(opts)
    stats = {
        "sent": 0,
        "acked_aa": 0,
        "acked_other": 0,
        "ack_timeouts": 0,
        "dropped": 0,
        "connects": 0,
        "unplugs": 0,
    }
    say(out, f"{host}:{port}")
    sock: socket.socket | None = None
    try:
        for real_t in Pacer(signal.period, opts.duration, stop):
            if signal.unplugged(real_t):
                if sock is not None:
                    sock.close()
                    sock = None
                    stats["unplugs"] += 1
                continue
            for frame in signal.hl7_frames(real_t, time.time()):
                sock = _send_until_acked(sock, host, port, frame, stats, stop)
    finally:
        if sock is not None:
            sock.close()
    return stats


def _send_until_acked(
    sock: socket.socket | None,
    host: str,
    port: int,
    frame: bytes,
    stats: dict[str, int],
    stop: threading.Event,
) -> socket.socket | None:
    """Send one frame and wait for its ACK, re-sending (MAX_RESENDS) as a monitor does;
    returns the connection to use next (None after a failure)."""
    for _attempt in range(MAX_RESENDS):
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=1.0)
                stats["connects"] += 1
            sock.sendall(frame)
            stats["sent"] += 1
            ack = _await_ack(sock, time.monotonic() + ACK_TIMEOUT_S)
        except OSError:
            ack = None
            if sock is not None:
                sock.close()
            sock = None
            if stop.wait(0.2):
                return None  # stopping: the frame is abandoned, not counted as dropped
            continue
        if ack is None:
            stats["ack_timeouts"] += 1
            continue
        stats["acked_aa" if b"MSA|AA" in ack else "acked_other"] += 1
        return sock
    stats["dropped"] += 1
    return sock
