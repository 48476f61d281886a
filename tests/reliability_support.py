"""Fault-injection harness (issue 8): a real clinic on loopback, and the audit of its database.

How this works: `Fleet` starts a real Mosquitto (the project's dev config, persistence on),
the real logger (`roomctl logger`, a subprocess) and N real room daemons (`roomctl room run
--simulate --config FILE`, subprocesses), each fed by a simulated Masimo monitor over TCP
(a thread of this process running the same simulator as `roomctl monitor simulate`).
Faults are SIGKILLs and restarts of those processes. Truth about what the rooms created is
read from their own outboxes (`meta.last_seq`, `meta.vitals_thinned`); `audit()` compares it
with the logger's database. `wait_converged()` is the recovery clock: it polls (with a
deadline) until the database holds every seq each room had created when the fault healed.

Used by tests/test_reliability_*.py (few cycles) and by `python -m tools.reliability` (more).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.mosquitto.run import Mosquitto, dev_config, free_port
from contract import topics
from firmware_py.monitors.simulate import SimulatorOptions, run_tcp_server
from tests.support.mqtt import staff_command

SITE = "rel"
CALL_ORDER = {"call_placed": 0, "call_priority_raised": 1, "call_escalated": 2}
CALL_END = {"call_claimed", "call_cancelled"}


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
    return int(meta.get("last_seq", 0)), depth, int(meta.get("vitals_thinned", 0))


@dataclass
class Audit:
    """What the database holds against what the rooms created."""

    created: dict[str, int] = field(default_factory=dict)  # room -> last seq
    thinned: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    unexpected: dict[str, list[int]] = field(default_factory=dict)
    table_mismatch: list[str] = field(default_factory=list)
    quarantined: int = 0
    calls: int = 0
    bad_calls: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Seqs missing beyond those the outbox says it thinned (must be 0)."""
        return sum(max(0, len(m) - self.thinned.get(r, 0)) for r, m in self.missing.items())

    @property
    def messages(self) -> int:
        return sum(self.created.values())

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"lost {self.lost}: {self.missing}")
        if any(self.unexpected.values()):
            out.append(f"seqs no room created: {self.unexpected}")
        out += self.table_mismatch + self.bad_calls
        if self.quarantined:
            out.append(f"{self.quarantined} messages quarantined")
        return out


def db_connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def db_has_all(db: Path, targets: dict[str, int], thinned: dict[str, int] | None = None) -> bool:
    """True when the ledger holds every seq <= target for each room (minus thinned gaps)."""
    if not db.exists():
        return False
    try:
        conn = db_connect(db)
    except sqlite3.Error:
        return False
    try:
        for room, last in targets.items():
            row = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE site = ? AND room = ? AND seq <= ?",
                (SITE, room, last),
            ).fetchone()
            if int(row[0]) + (thinned or {}).get(room, 0) < last:
                return False
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def audit(db: Path, created: dict[str, int], thinned: dict[str, int], live: bool = False) -> Audit:
    """Compare the database with what the rooms created. `live`: rooms still running, so
    seqs above `created` (made after it was read) are expected, not suspicious."""
    out = Audit(created=dict(created), thinned=dict(thinned))
    conn = db_connect(db)
    try:
        for room, last in created.items():
            got = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM messages WHERE site = ? AND room = ? ORDER BY seq",
                    (SITE, room),
                )
            ]
            have = set(got)
            out.missing[room] = [s for s in range(1, last + 1) if s not in have]
            out.unexpected[room] = [s for s in got if s < 1 or (s > last and not live)]
        for kind in ("vitals", "events"):
            ledger = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE kind = ?", (kind,)
            ).fetchone()[0]
            table = conn.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0]
            if ledger != table:
                out.table_mismatch.append(f"{kind}: ledger {ledger} rows, table {table}")
        out.quarantined = int(conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])
        out.bad_calls, out.calls = check_calls(conn)
    finally:
        conn.close()
    return out


def check_calls(conn: sqlite3.Connection) -> tuple[list[str], int]:
    """Every call: its events in seq order start with call_placed and end at most once;
    the `calls` row exists and its status agrees with the last event."""
    bad: list[str] = []
    chains: dict[tuple[str, str], list[str]] = {}
    for room, call_id, kind in conn.execute(
        "SELECT room, call_id, kind FROM events WHERE call_id IS NOT NULL AND site = ? "
        "ORDER BY room, seq",
        (SITE,),
    ):
        if kind.startswith("call_"):
            chains.setdefault((room, call_id), []).append(kind)
    rows = {
        (r, c): s
        for r, c, s in conn.execute(
            "SELECT room, call_id, status FROM calls WHERE site = ?", (SITE,)
        )
    }
    for key, kinds in chains.items():
        if kinds[0] != "call_placed" or kinds.count("call_placed") != 1:
            bad.append(f"call {key}: events {kinds} do not start with one call_placed")
        ends = [k for k in kinds if k in CALL_END]
        if len(ends) > 1 or (ends and kinds[-1] not in CALL_END):
            bad.append(f"call {key}: events after its end: {kinds}")
        want = {"call_claimed": "claimed", "call_cancelled": "cancelled"}.get(kinds[-1])
        status = rows.get(key)
        if status is None:
            bad.append(f"call {key}: no row in calls")
        elif want and status != want:
            bad.append(f"call {key}: status {status}, last event {kinds[-1]}")
    return bad, len(chains)


class Presser:
    """Places calls through `sim/button` (press call ... press cancel) from a paho client."""

    def __init__(self, url: str):
        from tests.support.mqtt import Recorder

        self.rec = Recorder(url, [topics.logger_status(SITE)])
        self.rec.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.rec.start()
        self.sent = 0

    def _connected(self) -> None:
        wait_for(self.rec.client.is_connected, 30, "presser connected to the broker")

    def click(self, room: str, button: str) -> None:
        self._connected()
        topic = topics.sim_button(SITE, room)
        self.rec.publish(topic, {"button": button, "action": "press"})
        self.rec.publish(topic, {"button": button, "action": "release"})
        self.sent += 1

    def phase(self, room: str, phase: str) -> None:
        self._connected()
        self.rec.publish(
            topics.room_topic(SITE, room, "cmd/phase"), staff_command(by="reliability", phase=phase)
        )

    def stop(self) -> None:
        self.rec.stop()


class Fleet:
    """Broker + logger + rooms on loopback; faults and the audit."""

    def __init__(self, root: Path, specs: list[RoomSpec], seed: int = 8):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.broker = dev_broker(root / "broker")
        self.db = root / "log.db"
        self.logger = Process(
            "logger",
            [
                "logger",
                "--broker",
                self.broker.url,
                "--db",
                str(self.db),
                "--site",
                SITE,
                "--client-id",
                "reliability-logger",
            ],
            root / "logger.log",
        )
        self.specs = specs
        self.rooms: dict[str, Room] = {}
        self.presser: Presser | None = None

    def start(self) -> Fleet:
        """Broker, logger (subscribed), rooms (running, drained); on failure stop them all."""
        try:
            self.broker.start()
            self.logger.start()
            self.presser = Presser(self.broker.url)
            self.wait_logger_subscribed()
            for spec in self.specs:
                room = Room(self, spec)
                self.rooms[spec.room] = room
                room.start()
            wait_for(
                lambda: all(r.outbox_stats()[0] >= 4 for r in self.rooms.values()),
                60,
                "rooms started",
            )
            self.wait_converged(60)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_logger_subscribed(self, timeout: float = 30) -> None:
        """A logger that never subscribed has no session to queue for: rooms started before
        it would publish into the void. Probe with a retained availability until it lands."""
        assert self.presser is not None
        self.presser.rec.publish(topics.availability(SITE, "probe"), "online", retain=True)

        def landed() -> bool:
            if not self.db.exists():
                return False
            try:
                conn = db_connect(self.db)
                try:
                    return bool(
                        conn.execute("SELECT 1 FROM room_state WHERE room = 'probe'").fetchone()
                    )
                finally:
                    conn.close()
            except sqlite3.Error:
                return False

        wait_for(landed, timeout, "logger subscribed")

    def created(self) -> tuple[dict[str, int], dict[str, int]]:
        seqs, thinned = {}, {}
        for name, room in self.rooms.items():
            last, _, thin = room.outbox_stats()
            seqs[name], thinned[name] = last, thin
        return seqs, thinned

    def wait_converged(self, timeout: float = 60) -> float:
        """Seconds until the database holds everything each room had created by now."""
        targets, thinned = self.created()
        try:
            return wait_for(lambda: db_has_all(self.db, targets, thinned), timeout, "drained")
        except TimeoutError:
            late = audit(self.db, targets, thinned)
            gaps = {r: m[:10] for r, m in late.missing.items() if m}
            raise TimeoutError(f"rooms not drained in {timeout} s; missing seqs {gaps}") from None

    def recover(self, timeout: float = 90) -> float:
        """Seconds from now (a process just restarted) until every room has made a new
        message and the database holds everything made up to it: the pipeline works again."""
        start = time.monotonic()
        before, _ = self.created()
        wait_for(
            lambda: all(self.created()[0][r] > n for r, n in before.items()),
            timeout,
            "every room made a message after the restart",
        )
        self.wait_converged(timeout)
        return time.monotonic() - start

    def audit_live(self, timeout: float = 60) -> Audit:
        """Audit while the rooms run: what they had made by now, once it has arrived."""
        targets, thinned = self.created()
        with contextlib.suppress(TimeoutError):  # a real loss shows in the audit itself
            wait_for(lambda: db_has_all(self.db, targets, thinned), timeout, "drained")
        return audit(self.db, targets, thinned, live=True)

    def add_inprocess(self, room: InProcessRoom) -> None:
        self.rooms[room.name] = room  # type: ignore[assignment]

    def alive(self) -> list[str]:
        """Names of processes that are down (should be none outside a fault)."""
        down = [p.name for p in (self.logger, *self.rooms.values()) if not p.alive()]
        if self.broker.proc is None or self.broker.proc.poll() is not None:
            down.append("broker")
        return down

    def press_calls(self, rooms: list[str] | None = None) -> None:
        """A call placed and cancelled in each room (queued by the broker if a room is down)."""
        assert self.presser is not None
        for name in rooms or list(self.rooms):
            self.presser.click(name, "call")
            self.presser.click(name, "cancel")

    def press_calls_only(self, rooms: list[str]) -> None:
        """A call placed (not cancelled) in each room."""
        assert self.presser is not None
        for name in rooms:
            self.presser.click(name, "call")

    def drain_and_stop(self, timeout: float = 60) -> tuple[dict[str, int], dict[str, int]]:
        """Stop the monitors, wait until every outbox is empty, stop the rooms; return what
        they created (a room stopped with rows still un-acked is restarted to send them)."""
        for room in self.rooms.values():
            if room.sim:
                room.sim.stop()
        for room in self.rooms.values():
            empty = _outbox_empty(room)
            for _ in range(3):
                wait_for(empty, timeout, f"{room.name} drained")
                room.terminate()
                if room.outbox_stats()[1] == 0 or isinstance(room, InProcessRoom):
                    break
                room.start()
        seqs, thinned = self.created()
        wait_for(lambda: db_has_all(self.db, seqs, thinned), timeout, "database complete")
        return seqs, thinned

    def stop(self) -> None:
        """Stop everything this fleet started (each step even if an earlier one fails)."""
        steps: list[Callable[[], object]] = []
        if self.presser:
            steps.append(self.presser.stop)
        for room in self.rooms.values():
            if room.sim:
                steps.append(room.sim.stop)
            steps.append(room.terminate)
        steps += [self.logger.terminate, self.broker.stop]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
        if errors:
            raise errors[0]


def _outbox_empty(room: Room) -> Callable[[], bool]:
    return lambda: room.outbox_stats()[1] == 0


@dataclass
class FaultRecord:
    """One row of the report: a fault, how often, what was lost, recovery times."""

    fault: str
    times: int = 0
    lost: int | None = 0
    recovery_s: list[float] = field(default_factory=list)
    notes: str = ""
    kind: str = "fault"  # fault | bad input | security

    def row(self) -> dict[str, Any]:
        rec = sorted(self.recovery_s)
        return {
            "kind": self.kind,
            "fault": self.fault,
            "times": self.times,
            "lost": self.lost,
            "recovery_max_s": round(rec[-1], 1) if rec else None,
            "recovery_median_s": round(rec[len(rec) // 2], 1) if rec else None,
            "notes": self.notes,
        }


def record(*rows: FaultRecord) -> None:
    """Append report rows to $RELIABILITY_RESULTS (JSON lines) when `python -m tools.reliability`
    runs the tests; a plain `make test` records nothing."""
    path = os.environ.get("RELIABILITY_RESULTS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.row()) + "\n")


def env_number(name: str, default: float) -> float:
    """A scale knob (cycles, seconds, counts) that `python -m tools.reliability` turns up."""
    return float(os.environ.get(name, default))


def kill_cycles(fleet: Fleet, cycles: int, records: dict[str, FaultRecord]) -> None:
    """Each cycle SIGKILLs, in a seeded random order and after a seeded random delay, one
    room daemon, the logger and the broker; each is restarted and recovery is timed."""
    gate = threading.Event()
    for _ in range(cycles):
        victims = ["room", "logger", "broker"]
        fleet.rng.shuffle(victims)
        for victim in victims:
            fleet.press_calls(fleet.rng.sample(sorted(fleet.rooms), 3))
            gate.wait(fleet.rng.uniform(0.2, 2.0))  # the random moment (not a wait for a result)
            rec = records.setdefault(f"SIGKILL {victim}", FaultRecord(f"SIGKILL {victim}"))
            if victim == "room":
                room = fleet.rooms[fleet.rng.choice(sorted(fleet.rooms))]
                room.kill()
                room.start()
            elif victim == "logger":
                fleet.logger.kill()
                fleet.logger.start()
            else:
                fleet.broker.kill()
                fleet.broker.start()
            rec.times += 1
            rec.recovery_s.append(fleet.recover(90))


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
