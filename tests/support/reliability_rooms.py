"""Fault-injection harness, the processes: real room daemons (subprocesses, each fed by a
simulated Masimo over TCP on a thread of this process) and a room daemon in-process with mock
pins, plus the poll-with-deadline every wait of the harness uses.

Truth about what a room created is read from its own outbox (`meta.last_seq`,
`meta.vitals_thinned`) by `outbox_stats`; `tests.support.reliability_audit` compares it with the
logger's database, `tests.support.reliability_fleet` runs the clinic.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.mosquitto.run import Mosquitto, dev_config, free_port
from firmware_py.monitors.simulate import SimulatorOptions, run_tcp_server

if TYPE_CHECKING:
    from tests.support.reliability_fleet import Fleet

SITE = "rel"


def wait_for(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Poll `pred` until true; return the seconds it took; TimeoutError after `timeout`."""
    start = time.monotonic()
    gate = threading.Event()
    while not pred():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f} s")
        gate.wait(every)
    return time.monotonic() - start


def dev_broker(state_dir: Path) -> Mosquitto:
    """The project's dev broker config (it runs as the current user, so persistence works
    when the tests run as root: see tests/test_broker_kill_replay.py)."""
    port = free_port()
    return Mosquitto(state_dir, port=port, config_text=dev_config(port, state_dir))


class Process:
    """A `python -m controller.cli ...` child with its output appended to a log file."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name, self.args, self.log = name, args, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.starts = 0

    def start(self) -> None:
        assert not self.alive(), f"{self.name} already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controller.cli", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None and self.alive(), f"{self.name} died on its own"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def terminate(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
                return None
        return self.proc.returncode

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0


class LineSink:
    """A TextIO stand-in that the simulator prints its address to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        self.lines.extend(t for t in text.splitlines() if t)
        if self.lines:
            self.ready.set()
        return len(text)

    def flush(self) -> None:
        pass


class MonitorSim:
    """The simulated Masimo of one room, on a free loopback TCP port (a thread)."""

    def __init__(self, opts: SimulatorOptions):
        self.opts = opts
        self.stop_event = threading.Event()
        self.sink = LineSink()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stats: dict[str, int] = {}

    def _run(self) -> None:
        self.stats = run_tcp_server(self.opts, "127.0.0.1:0", self.sink, self.stop_event)  # type: ignore[arg-type]

    def signal_time(self) -> float:
        """Seconds of device time played so far (the simulator's fault clock)."""
        return time.monotonic() - self.started

    def start(self) -> str:
        self.started = time.monotonic()
        self.thread.start()
        if not self.sink.ready.wait(10):
            raise TimeoutError("monitor simulator did not start")
        return self.sink.lines[0]

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


@dataclass
class RoomSpec:
    room: str
    monitor: SimulatorOptions | None = None
    clock: str = "synced"
    escalate_s: float = 600.0


class Room(Process):
    def __init__(self, fleet: Fleet, spec: RoomSpec):
        self.spec = spec
        self.state_dir = fleet.root / f"room-{spec.room}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.sim = MonitorSim(spec.monitor) if spec.monitor else None
        self.monitor_address = self.sim.start() if self.sim else None
        self.config = fleet.root / f"room-{spec.room}.toml"
        self.config.write_text(room_toml(fleet, spec, self.state_dir, self.monitor_address))
        args = ["room", "run", "--config", str(self.config), "--clock", spec.clock]
        super().__init__(f"room {spec.room}", args, fleet.root / f"room-{spec.room}.log")

    @property
    def outbox(self) -> Path:
        return self.state_dir / "outbox.sqlite3"

    def outbox_stats(self) -> tuple[int, int, int]:
        """(last_seq, rows waiting for a PUBACK, vitals_thinned) read from the room's outbox."""
        return outbox_stats(self.outbox)

    def seq_gaps(self) -> list[tuple[int, int]]:
        return outbox_gaps(self.outbox)

    def stored_last(self) -> int:
        return int(outbox_meta(self.outbox).get("last_seq", 0))


def room_toml(fleet: Fleet, spec: RoomSpec, state_dir: Path, monitor: str | None) -> str:
    lines = [
        f'site = "{SITE}"',
        f'room = "{spec.room}"',
        f'state_dir = "{state_dir}"',
        "simulate = true",
        "[broker]",
        f'url = "{fleet.broker.url}"',
        "reconnect_min_s = 0.5",
        "reconnect_max_s = 1",
        "keepalive_s = 5",
        "[timing]",
        "health_every_s = 3600",
        f"escalate_normal_s = {spec.escalate_s}",
        f"escalate_infusion_s = {spec.escalate_s}",
    ]
    if monitor:
        lines += [
            "[monitor]",
            'protocol = "masimo"',
            'transport = "tcp-client"',
            f'address = "{monitor}"',
            "silence_s = 3",
        ]
    return "\n".join(lines) + "\n"


def outbox_stats(path: Path) -> tuple[int, int, int]:
    if not path.exists():
        return 0, 0, 0  # the room has not opened its outbox yet
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        cols = {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}
        pending = " WHERE acked_at IS NULL" if "acked_at" in cols else ""  # replay window
        depth = int(conn.execute(f"SELECT COUNT(*) FROM outbox{pending}").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return 0, 0, 0  # created, schema not yet committed
    finally:
        conn.close()
    # the last seq stored: telemetry sent from memory may be above it (`outbox_gaps`)
    return int(meta.get("last_seq", 0)), depth, int(meta.get("vitals_thinned", 0))


def outbox_meta(path: Path) -> dict[str, str]:
    """The outbox's meta table (empty before the room made it)."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def outbox_gaps(path: Path) -> list[tuple[int, int]]:
    """Seq ranges the room may have sent from memory and never stored (issue 17): those
    skipped after unclean stops (`meta.seq_gaps`), and above the last stored seq while the
    room runs or after it died (`seq_reserved`). A stored message is never in one."""
    meta = outbox_meta(path)
    gaps = [(int(a), int(b)) for a, b in json.loads(meta.get("seq_gaps", "[]"))]
    last, reserved = int(meta.get("last_seq", 0)), int(meta.get("seq_reserved", 0))
    if reserved > last:
        gaps.append((last + 1, reserved))
    return gaps


class InProcessRoom:
    """The real `RoomDaemon` on a thread of this process with gpiozero mock pins, so the test
    can press its buttons while the broker is unreachable (a subprocess room's only input in
    simulation is MQTT `sim/button`, which cannot reach it then)."""

    def __init__(self, fleet: Fleet, room: str, state_dir: Path | None = None, **over: Any):
        from controller.config import build_config
        from controller.daemon import RoomDaemon
        from firmware_py import room_io

        self.name = room
        self.spec = RoomSpec(room)
        self.sim: MonitorSim | None = None
        self.state_dir = state_dir or fleet.root / f"room-{room}"
        raw: dict[str, Any] = {
            "site": SITE,
            "room": room,
            "state_dir": str(self.state_dir),
            "simulate": True,
            "clock": "synced",
            "broker": {"url": fleet.broker.url, "reconnect_min_s": 0.5, "reconnect_max_s": 1},
            "timing": {"health_every_s": 3600},
        }
        raw.update(over)
        self.config = build_config(raw)
        self.factory = room_io.mock_pin_factory()
        self.daemon = RoomDaemon(self.config, pin_factory=self.factory)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.placed = 0
        self.crash: BaseException | None = None

    def _run(self) -> None:
        try:
            self.daemon.run()
        except BaseException as exc:  # what would end a `roomctl room run` process
            self.crash = exc

    @property
    def outbox(self) -> Path:
        return self.state_dir / "outbox.sqlite3"

    def outbox_stats(self) -> tuple[int, int, int]:
        return outbox_stats(self.outbox)

    def seq_gaps(self) -> list[tuple[int, int]]:
        return outbox_gaps(self.outbox)

    def stored_last(self) -> int:
        return int(outbox_meta(self.outbox).get("last_seq", 0))

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def tracebacks(self) -> int:
        return self.daemon.internal_errors

    def _click(self, pin: int, done: Callable[[], bool]) -> None:
        self.factory.pin(pin).drive_low()
        self.factory.pin(pin).drive_high()
        wait_for(done, 10, "press handled")

    def place_and_cancel(self) -> None:
        """One call placed then cancelled with the room's own (mock) buttons; waits until the
        daemon's call state shows each press (not until anything is stored or sent)."""
        before = self.daemon.core.call.call_id
        self._click(
            self.config.gpio.call_pin,
            lambda: self.daemon.core.call.call_id not in (None, before),
        )
        self._click(self.config.gpio.cancel_pin, lambda: self.daemon.core.call.call_id is None)
        self.placed += 1

    def terminate(self, timeout: float = 20) -> int | None:
        if self.thread.is_alive():
            self.daemon.stop()
            self.thread.join(timeout)
        return 0

    def start_again(self) -> None:
        raise NotImplementedError("an in-process room is not restarted")
