"""SIGKILL a room daemon, the logger and the broker at seeded random moments, over cycles.

Ten simulated rooms (each with a simulated Masimo over TCP) publish through a real Mosquitto
(persistence on) to the real logger; calls are placed and cancelled through `sim/button`
throughout. After the cycles: every (site, room, seq) the rooms created is in the database
exactly once, every call has its events in order, nothing was quarantined, and every
process is still running without having been helped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firmware_py.monitors.simulate import SimulatorOptions
from tests.support.reliability_audit import FaultRecord, audit, env_number, record
from tests.support.reliability_fleet import Fleet, kill_cycles
from tests.support.reliability_rooms import RoomSpec

pytestmark = [pytest.mark.reliability, pytest.mark.broker, pytest.mark.slow]

SEED = int(os.environ.get("RELIABILITY_SEED", "8"))
CYCLES = int(env_number("RELIABILITY_CYCLES", 2))
ROOMS = [f"{101 + i}" for i in range(10)]


@pytest.mark.timeout(240 + 60 * CYCLES)
def test_sigkill_room_logger_broker_cycles_lose_nothing(tmp_path: Path) -> None:
    specs = [
        RoomSpec(room, monitor=SimulatorOptions("masimo", seed=SEED + i))
        for i, room in enumerate(ROOMS)
    ]
    fleet = Fleet(tmp_path, specs, seed=SEED).start()
    records: dict[str, FaultRecord] = {}
    try:
        kill_cycles(fleet, cycles=CYCLES, records=records)
        fleet.press_calls()
        fleet.wait_converged(60)
        assert fleet.alive() == [], f"processes down after recovery: {fleet.alive()}"
        created, thinned = fleet.drain_and_stop()
        result = audit(fleet.db, created, thinned, gaps=fleet.seq_gaps())
        for rec in records.values():
            rec.lost = result.lost
            rec.notes = (
                f"{len(ROOMS)} rooms; whole run: {result.messages} messages, {result.calls} "
                f"calls, {len(result.problems())} problems"
            )
        record(*records.values())
        assert result.problems() == []
        assert sum(thinned.values()) == 0
        assert result.messages > 10 * len(ROOMS)
        assert result.calls >= len(ROOMS), f"only {result.calls} calls recorded"
        assert {r.times for r in records.values()} == {CYCLES}
        assert fleet.logger.tracebacks() == 0
        assert [r.name for r in fleet.rooms.values() if r.tracebacks()] == []
    finally:
        fleet.stop()
