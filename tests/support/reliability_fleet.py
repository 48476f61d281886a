"""Fault-injection harness (issue 8): a real clinic on loopback, and the audit of its database.

How this works: `Fleet` starts a real Mosquitto (the project's dev config, persistence on),
the real logger (`roomctl logger`, a subprocess) and N real room daemons (`roomctl room run
--simulate --config FILE`, subprocesses), each fed by a simulated Masimo monitor over TCP
(a thread of this process running the same simulator as `roomctl monitor simulate`).
Faults are SIGKILLs and restarts of those processes. Truth about what the rooms created is
read from their own outboxes (`meta.last_seq`, `meta.vitals_thinned`); `audit()` compares it
with the logger's database. `wait_converged()` is the recovery clock: it polls (with a
deadline) until the database holds every seq each room had created when the fault healed.

The rooms are in `tests.support.reliability_rooms`, the audit in
`tests.support.reliability_audit`. Used by tests/test_reliability_*.py (few cycles) and by
`python -m tools.reliability` (more).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contract import topics
from tests.support.mqtt import staff_command
from tests.support.reliability_audit import (
    Audit,
    FaultRecord,
    audit,
    db_connect,
    db_has_all,
)
from tests.support.reliability_rooms import (
    SITE,
    InProcessRoom,
    Process,
    Room,
    RoomSpec,
    dev_broker,
    wait_for,
)


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
            topics.cmd(SITE, room, "phase", "board"), staff_command(by="reliability", phase=phase)
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
