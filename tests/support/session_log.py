"""A scripted infusion session written into a real SQLite log store, as the logger would store it.

Room 101 of site s1 (or another), session `sess-1`, starting at T0 (09:00 UTC):

| time  | what |
|-------|------|
| 09:00 | pre_check |
| 09:05 | infusion |
| 09:05-09:49 | a reading every minute: SpO2 97, pulse 72, NIBP 118/76 (mean 90) every 5 min |
| 09:12 | SpO2 88 (the lowest), pulse 110; alert `spo2_low` raised (cleared 09:14) |
| 09:20 | NIBP 162/95 (the highest) |
| 09:25 | SpO2 0 flagged `spo2_zero` (invalid: value None) |
| 09:26 | a reading flagged `demo_mode` (left out whole) |
| 09:40 | NIBP 118/76 measured 5 minutes earlier (`age_s` 300: observed 09:35) |
| 09:30 | call c1 (normal) placed; claimed by alice 09:30:42; cancelled 09:31:30 |
| 09:40 | call c2 (infusion) placed; ended in the room 09:41:05 (no claim) |
| 09:50 | recovery |
| 10:20 | discharge_ready |
| 10:25 | idle (session ends) |
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.logger.store import open_store
from contract import messages, topics
from tests.support.logger_store import received

SITE = "s1"
ROOM = "101"
SESSION = "sess-1"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EPOCH = "00000000000000aa"
INVALID_READING_AT = 25  # minutes after T0
DEMO_READING_AT = 26
NIBP_DATED_AT = 40
K = messages.EventKind


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class _Script:
    def __init__(self, site: str) -> None:
        self.site = site
        self.seq = 0
        self.items: list[tuple[str, str]] = []

    def event(self, minutes: float, kind: messages.EventKind, **kw: Any) -> None:
        self.seq += 1
        msg = messages.EventMessage(
            site=self.site, room=ROOM, epoch=EPOCH, seq=self.seq, ts=_at(minutes),
            clock_synced=True, kind=kind, **kw,
        )  # fmt: skip
        self.items.append((topics.events(self.site, ROOM), msg.model_dump_json()))

    def phase(self, minutes: float, phase: str, before: str) -> None:
        self.event(
            minutes, K.PHASE_CHANGED, phase=messages.Phase(phase),
            from_phase=messages.Phase(before), session_id=SESSION,
        )  # fmt: skip

    def reading(self, minutes: float, **values: Any) -> None:
        self.seq += 1
        msg = messages.VitalsMessage(
            site=self.site, room=ROOM, epoch=EPOCH, seq=self.seq, ts=_at(minutes),
            clock_synced=True, protocol="masimo", **values,
        )  # fmt: skip
        self.items.append((topics.vitals(self.site, ROOM), msg.model_dump_json()))


def scripted_session(site: str = SITE) -> list[tuple[str, str]]:
    """(topic, payload) of the whole session, in the order the room published them."""
    s = _Script(site)
    s.phase(0, "pre_check", "idle")
    s.phase(5, "infusion", "pre_check")
    for minute in range(5, 50):
        values: dict[str, Any] = {"spo2": 97.0, "pulse_rate": 72.0}
        if minute % 5 == 0:
            values |= {"nibp_sys": 118.0, "nibp_dia": 76.0, "nibp_mean": 90.0}
        if minute == 12:
            values |= {"spo2": 88.0, "pulse_rate": 110.0}
        if minute == 20:
            values |= {"nibp_sys": 162.0, "nibp_dia": 95.0, "nibp_mean": 117.0}
        if minute == INVALID_READING_AT:
            values |= {"spo2": None, "quality": ["spo2_zero"]}
        if minute == DEMO_READING_AT:
            values |= {"quality": ["demo_mode"]}
        if minute == NIBP_DATED_AT:  # the cuff measured 5 minutes before this reading
            values |= {"age_s": {"nibp_sys": 300.0, "nibp_dia": 300.0, "nibp_mean": 300.0}}
        s.reading(minute, **values)
        if minute == 12:
            s.event(12, K.ALERT_RAISED, phase=messages.Phase.INFUSION, reason="spo2 88 < 90",
                    detail={"name": "spo2_low", "field": "spo2", "value": 88.0,
                            "threshold": 90.0})  # fmt: skip
        if minute == 14:
            s.event(14, K.ALERT_CLEARED, phase=messages.Phase.INFUSION, reason="back to 97",
                    detail={"name": "spo2_low", "field": "spo2", "value": 97.0,
                            "threshold": 90.0})  # fmt: skip
    normal, infusion = messages.CallPriority.NORMAL, messages.CallPriority.INFUSION
    s.event(30, K.CALL_PLACED, call_id="c1", priority=normal)
    s.event(30.7, K.CALL_CLAIMED, call_id="c1", by="alice")
    s.event(31.5, K.CALL_CANCELLED, call_id="c1", by="alice")
    s.event(40, K.CALL_PLACED, call_id="c2", priority=infusion)
    s.event(40 + 65 / 60, K.CALL_CANCELLED, call_id="c2")
    s.phase(50, "recovery", "infusion")
    s.phase(80, "discharge_ready", "recovery")
    s.phase(85, "idle", "discharge_ready")
    return s.items


def write_session(db: Path, site: str = SITE) -> Path:
    """Store the scripted session of `site` in the SQLite database `db` (created); return `db`."""
    store = open_store(db)
    try:
        store.write_batch(
            [
                received(t, p, site=site, rx="2026-03-01T10:30:00.000Z")
                for t, p in scripted_session(site)
            ]
        )
    finally:
        store.close()
    return db


def write_calls(db: Path, site: str, placed: dict[str, datetime], room: str = ROOM) -> Path:
    """Store one call per `call_id -> placed at`, each claimed by alice 30 s later, in `db`."""
    items = []
    seq = 0
    for call_id, at in sorted(placed.items(), key=lambda item: item[1]):
        for kind, offset, by in ((K.CALL_PLACED, 0, None), (K.CALL_CLAIMED, 30, "alice")):
            seq += 1
            msg = messages.EventMessage(
                site=site, room=room, epoch=EPOCH, seq=seq, ts=at + timedelta(seconds=offset),
                clock_synced=True, kind=kind, call_id=call_id, by=by,
                priority=messages.CallPriority.NORMAL if by is None else None,
            )  # fmt: skip
            items.append(received(topics.events(site, room), msg.model_dump_json(), site=site))
    store = open_store(db)
    try:
        store.write_batch(items)
    finally:
        store.close()
    return db
