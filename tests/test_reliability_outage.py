"""The broker unreachable while calls are placed and vitals flow; monitors unplugged and
sending garbage; clocks unsynchronised. One fleet of ten subprocess rooms plus one room
in this process (its buttons pressed while the broker is down).

What is simulated, exactly:
- Outage: Mosquitto stopped (SIGTERM, persistence kept) for OUTAGE_S, then started again.
- Calls during the outage: the in-process room's mock GPIO buttons (place, cancel); the
  subprocess rooms get calls placed just before the outage that escalate during it.
- Monitors: room 109's simulated Masimo unplugs (TCP server closed) for 4 s every 16 s;
  room 110's sends a junk line before every record for RELIABILITY_GARBAGE_S seconds.
- Clock: rooms 101 and 102 run with `--clock unsynced` (the flag the kernel would give);
  101 is then restarted synced. A clock *step* is not made on this machine: a test below
  sends crafted messages whose `ts` jumps back an hour with `clock_synced=false`.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract import messages, timefmt, topics
from firmware_py.monitors.simulate import SimulatorOptions
from tests.support.reliability_audit import (
    FaultRecord,
    audit,
    db_rows,
    env_number,
    record,
)
from tests.support.reliability_fleet import Fleet
from tests.support.reliability_rooms import SITE, InProcessRoom, RoomSpec, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.broker, pytest.mark.slow]

SEED = int(os.environ.get("RELIABILITY_SEED", "8"))
OUTAGE_S = env_number("RELIABILITY_OUTAGE_S", 20)
GARBAGE_S = env_number("RELIABILITY_GARBAGE_S", 10)
FLAKY: dict[str, dict[str, Any]] = {
    "unplug": {"fault_every_s": 16.0, "fault_start_s": 2.0, "fault_len_s": 4.0},
    # garbage windows recur (a room slow to start under load still sees a whole one)
    "garbage": {"fault_every_s": GARBAGE_S + 15, "fault_start_s": 1.0, "fault_len_s": GARBAGE_S},
}


def specs() -> list[RoomSpec]:
    out = []
    for i in range(10):
        room = f"{101 + i}"
        fault = {"109": "unplug", "110": "garbage"}.get(room)
        opts = SimulatorOptions("masimo", seed=SEED + i, fault=fault)
        if fault:
            opts = SimulatorOptions("masimo", seed=SEED + i, fault=fault, **FLAKY[fault])
        clock = "unsynced" if room in ("101", "102") else "synced"
        out.append(RoomSpec(room, monitor=opts, clock=clock, escalate_s=3))
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("outage"), specs(), seed=SEED).start()
    inproc = InProcessRoom(f, "111")
    inproc.start()
    f.add_inprocess(inproc)
    try:
        f.wait_converged(60)
        yield f
    finally:
        f.stop()


@pytest.mark.timeout(180 + OUTAGE_S)
def test_broker_down_for_a_while_calls_placed_vitals_flow_nothing_lost(fleet: Fleet) -> None:
    inproc = fleet.rooms["111"]
    assert isinstance(inproc, InProcessRoom)
    subprocess_rooms = [r for r in fleet.rooms if r != "111"]
    fleet.press_calls_only(subprocess_rooms)  # these escalate while the broker is down
    before, _ = fleet.created()
    down_at = datetime.now(UTC)
    fleet.broker.stop()
    gate = threading.Event()
    placed = 0
    while (datetime.now(UTC) - down_at).total_seconds() < OUTAGE_S:
        inproc.place_and_cancel()
        placed += 1
        gate.wait(min(3.0, OUTAGE_S / 4))  # the outage lasts; calls keep being placed
    during, _ = fleet.created()
    fleet.broker.start()
    up_at = datetime.now(UTC)
    recovery = fleet.wait_converged(90)
    assert recovery < 90
    # messages were created while the broker was down (vitals, escalations, calls)
    grew = {r: during[r] - before[r] for r in during}
    assert all(n > 0 for n in grew.values()), grew
    rows = db_rows(
        fleet.db,
        "SELECT COUNT(*) FROM events WHERE site = ? AND room = '111' AND kind = 'call_placed' "
        "AND ts >= ? AND ts < ?",
        SITE,
        timefmt.format_ts(down_at),
        timefmt.format_ts(up_at),
    )
    assert rows[0][0] == placed >= 2
    escalated = db_rows(
        fleet.db,
        "SELECT DISTINCT room FROM events WHERE kind = 'call_escalated' AND ts >= ? AND ts < ?",
        timefmt.format_ts(down_at),
        timefmt.format_ts(up_at),
    )
    assert {r[0] for r in escalated} == set(subprocess_rooms)
    vitals = db_rows(
        fleet.db,
        "SELECT DISTINCT room FROM vitals WHERE ts >= ? AND ts < ?",
        timefmt.format_ts(down_at + timedelta(seconds=1)),
        timefmt.format_ts(up_at),
    )
    steady = set(subprocess_rooms) - {"109"}  # 109's monitor is being unplugged on purpose
    assert steady <= {r[0] for r in vitals}
    fleet.press_calls(subprocess_rooms)  # cancel the escalated calls, then place/cancel again
    fleet.wait_converged(60)
    result = fleet.audit_live()
    record(
        FaultRecord(
            f"broker unreachable {OUTAGE_S:.0f} s (stopped, then started)",
            1,
            result.lost,
            [recovery],
            f"11 rooms; {sum(grew.values())} messages made while it was down, incl. "
            f"{placed} calls placed and cancelled on a room's buttons and escalations in "
            f"{len(escalated)} rooms",
        )
    )
    assert result.problems() == []
    assert fleet.alive() == []


@pytest.mark.timeout(120 + GARBAGE_S)
def test_monitor_unplugged_and_garbage_recover_by_themselves(fleet: Fleet) -> None:
    def kinds(room: str) -> list[str]:
        rows = db_rows(fleet.db, "SELECT kind FROM events WHERE room = ? ORDER BY seq", room)
        return [str(r[0]) for r in rows]

    # 109's monitor is unplugged 4 s in every 16 s: lost, restored, and vitals after that
    wait_for(lambda: kinds("109").count("monitor_link_restored") >= 2, 90, "109 replugged")
    last_restore = db_rows(
        fleet.db,
        "SELECT MAX(seq) FROM events WHERE room = '109' AND kind = 'monitor_link_restored'",
    )[0][0]
    wait_for(
        lambda: (
            db_rows(
                fleet.db,
                "SELECT COUNT(*) FROM vitals WHERE room = '109' AND seq > ?",
                last_restore,
            )[0][0]
            > 0
        ),
        30,
        "109 vitals after the replug",
    )
    assert kinds("109").count("monitor_link_lost") >= 2
    # 110's monitor sends garbage: frames rejected, vitals keep coming, link never lost
    sim = fleet.rooms["110"].sim
    assert sim is not None
    wait_for(
        lambda: db_rows(fleet.db, "SELECT COUNT(*) FROM vitals WHERE room = '110'")[0][0] > 0,
        60,
        "110 reading its monitor",
    )
    # the end of the first whole garbage window after the room was reading its monitor
    every = FLAKY["garbage"]["fault_every_s"]
    connected = sim.signal_time()
    k = max(0, math.ceil((connected - 1.0) / every))
    window_end = 1.0 + k * every + GARBAGE_S + 1
    wait_for(lambda: sim.signal_time() > window_end, window_end - connected + 30, "garbage window")
    fleet.broker.restart()  # a reconnect publishes a fresh health snapshot
    fleet.wait_converged(60)

    def rejected() -> int:
        row = db_rows(fleet.db, "SELECT health FROM room_state WHERE room = '110'")[0][0]
        return int(json.loads(str(row))["monitor"]["frames_rejected"])

    assert rejected() > 0
    assert "monitor_link_lost" not in kinds("110")
    n_vitals = db_rows(fleet.db, "SELECT COUNT(*) FROM vitals WHERE room = '110'")[0][0]
    n_109 = db_rows(fleet.db, "SELECT COUNT(*) FROM vitals WHERE room = '109'")[0][0]
    outages = link_outages(fleet.db, "109")
    result = fleet.audit_live()
    record(
        FaultRecord("monitor unplugged 4 s, replugged (TCP bridge closed)", len(outages),
                    result.lost, outages,
                    "recovery = monitor_link_lost to monitor_link_restored, no restart"),
        FaultRecord(f"monitor sends garbage for {GARBAGE_S:.0f} s", 1, result.lost, [],
                    f"{rejected()} frames rejected, {n_vitals} readings stored, link never lost"),
    )  # fmt: skip
    assert result.problems() == []
    assert n_vitals > n_109  # garbage costs no readings, an unplug does
    assert fleet.alive() == []


def link_outages(db: Path, room: str) -> list[float]:
    """Seconds from each monitor_link_lost to the next monitor_link_restored."""
    out, lost_at = [], None
    for kind, ts in db_rows(db, "SELECT kind, ts FROM events WHERE room = ? AND kind LIKE "
                            "'monitor_link_%' ORDER BY seq", room):  # fmt: skip
        at = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        if kind == "monitor_link_lost":
            lost_at = at
        elif lost_at is not None:
            out.append((at - lost_at).total_seconds())
            lost_at = None
    return out


@pytest.mark.timeout(120)
def test_unsynced_clock_is_flagged_and_resynced_after_restart(fleet: Fleet) -> None:
    def flags(room: str) -> set[int]:
        return {
            int(r[0])
            for r in db_rows(
                fleet.db, "SELECT DISTINCT clock_synced FROM messages WHERE room = ?", room
            )
        }

    assert flags("102") == {0}
    assert flags("103") == {1}
    room = fleet.rooms["101"]
    room.terminate()
    room.args[room.args.index("unsynced")] = "synced"
    restart_seq = room.outbox_stats()[0]
    room.start()
    wait_for(lambda: room.outbox_stats()[0] >= restart_seq + 4, 30, "101 restarted")
    fleet.wait_converged(60)
    rows = db_rows(
        fleet.db, "SELECT seq, clock_synced FROM messages WHERE room = '101' ORDER BY seq"
    )
    assert {int(s) for q_, s in rows if int(q_) <= restart_seq} == {0}
    assert {int(s) for q_, s in rows if int(q_) > restart_seq} == {1}
    result = fleet.audit_live()
    record(
        FaultRecord(
            "clock unsynchronised (2 rooms), then resynced by a restart",
            3,
            result.lost,
            [],
            "clock_synced=false on every message until the restart",
        )
    )
    assert result.problems() == []


def send(fleet: Fleet, leaf: str, msg: messages.Envelope) -> None:
    assert fleet.presser is not None
    fleet.presser.rec.publish(topics.room_topic(SITE, msg.room, leaf), msg.model_dump_json())


@pytest.mark.timeout(60)
def test_clock_stepped_back_logger_orders_by_seq(fleet: Fleet) -> None:
    """Crafted messages from a room whose clock steps back one hour between seq 1 and 2."""
    t1 = datetime.now(UTC)
    t2 = t1 - timedelta(hours=1)  # stepped back
    env = {"site": SITE, "room": "199", "epoch": "0000000000000001", "clock_synced": False}
    send(
        fleet,
        "events",
        messages.EventMessage(
            **env,
            seq=1,
            ts=t1,
            kind=messages.EventKind.CALL_PLACED,
            call_id="c1",
            priority=messages.CallPriority.NORMAL,
        ),
    )
    state = {"since": t1, "session_id": "s199"}
    send(
        fleet,
        "state",
        messages.StateMessage(**env, seq=2, ts=t1, phase=messages.Phase.PRE_CHECK, **state),
    )
    send(
        fleet,
        "events",
        messages.EventMessage(
            **env, seq=5, ts=t2, kind=messages.EventKind.CALL_CANCELLED, call_id="c1", by="room"
        ),
    )
    send(
        fleet,
        "state",
        messages.StateMessage(**env, seq=4, ts=t2, phase=messages.Phase.INFUSION, **state),
    )
    # an older seq arriving last, with the newest ts, must not win either
    send(
        fleet,
        "state",
        messages.StateMessage(
            **env, seq=3, ts=t1 + timedelta(hours=1), phase=messages.Phase.IDLE, **state
        ),
    )
    wait_for(
        lambda: len(db_rows(fleet.db, "SELECT seq FROM messages WHERE room = '199'")) == 5,
        30,
        "stepped messages stored",
    )
    phase, state_seq = db_rows(
        fleet.db, "SELECT phase, state_seq FROM room_state WHERE room = '199'"
    )[0]
    assert (phase, state_seq) == ("infusion", 4)
    status_sql = "SELECT status FROM calls WHERE room = '199' AND call_id = 'c1'"
    status = db_rows(fleet.db, status_sql)[0][0]
    assert status == "cancelled"
    kinds = [
        r[0] for r in db_rows(fleet.db, "SELECT kind FROM events WHERE room = '199' ORDER BY seq")
    ]
    assert kinds == ["call_placed", "call_cancelled"]
    with sqlite3.connect(f"file:{fleet.db}?mode=ro", uri=True) as conn:
        flags = {r[0] for r in conn.execute("SELECT clock_synced FROM messages WHERE room='199'")}
    assert flags == {0}
    record(
        FaultRecord(
            "clock stepped back 1 h (crafted messages)",
            1,
            0,
            [],
            "room_state, calls and event order follow seq, not ts",
        )
    )


@pytest.mark.timeout(120)
def test_after_everything_every_seq_exactly_once(fleet: Fleet) -> None:
    created, thinned = fleet.drain_and_stop()
    result = audit(fleet.db, created, thinned)
    record(
        FaultRecord(
            "all of the above: final audit of the outage fleet",
            1,
            result.lost,
            [],
            f"{result.messages} messages, {result.calls} calls, "
            f"problems: {result.problems() or 'none'}",
        )
    )
    assert result.problems() == []
    assert sum(thinned.values()) == 0
    assert [r for r in fleet.rooms.values() if r.tracebacks()] == []
