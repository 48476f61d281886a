"""A scripted clinic day for the manager's reports (issue 20): seven calls in three rooms on
2026-11-03 (UTC) answered every way there is, and a room-reliability history, as the logger
would store them. The numbers each report must show are worked out by hand in the tests.

The calls (times UTC; response = placed -> first of claim, presence, end in the room):

call  room  type (priority)     placed    what happened                          response
c1    101   normal (normal)     08:00:00  alice claims 08:00:30, cancel 08:02       30 s claim
c2    102   bath (high)         09:00:00  presence 09:01:00 ends it                 60 s presence
c3    101   normal (normal)     10:00:00  escalated 10:02, bob claims 10:03        180 s claim
c4    103   normal->emergency   11:00:00  raised 11:00:10, presence 11:00:40,       40 s presence
                                          alice claims 11:01, cancel 11:04
c5    102   normal (normal)     20:00:00  cancel button 20:00:20, nobody claimed    20 s cancel
c6    103   cord_out (trouble)  21:00:00  nothing                                   unanswered
c7    101   assist (high)       23:30:00  bob claims 23:31:30, cancel next day      90 s claim
c8    104   test (trouble)      12:00:00  a technician's test call, cancelled 12:00:30
                                          (listed as TEST CALL, counted in no figure)

Plus noise the reports must ignore: presence in 101 at 07:00 before any call, and the cancel
of a call (c0) placed the day before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.logger.ingest import Classified
from contract import messages, topics
from contract.timefmt import format_ts
from tests.support.logger_store import received

SITE = "test"
DAY = datetime(2026, 11, 3, tzinfo=UTC)
EPOCH = "00000000000000aa"
K = messages.EventKind
P = messages.CallPriority

# (room, "HH:MM:SS" or a datetime, kind, call_id, fields)
_CALL_SCRIPT: list[tuple[str, str | datetime, K, str | None, dict[str, Any]]] = [
    ("101", "07:00:00", K.PRESENCE_STARTED, None, {}),
    ("101", "07:05:00", K.PRESENCE_ENDED, None, {}),
    ("104", "00:01:00", K.CALL_CANCELLED, "c0", {"priority": P.NORMAL, "call_type": "normal",
                                                 "ended_by": "cancel"}),
    ("101", "08:00:00", K.CALL_PLACED, "c1", {"priority": P.NORMAL, "call_type": "normal"}),
    ("101", "08:00:30", K.CALL_CLAIMED, "c1", {"priority": P.NORMAL, "call_type": "normal",
                                               "by": "alice"}),
    ("101", "08:02:00", K.CALL_CANCELLED, "c1", {"priority": P.NORMAL, "call_type": "normal",
                                                 "by": "alice", "ended_by": "cancel"}),
    ("102", "09:00:00", K.CALL_PLACED, "c2", {"priority": P.HIGH, "call_type": "bath"}),
    ("102", "09:01:00", K.PRESENCE_STARTED, None, {}),
    ("102", "09:01:00", K.CALL_CANCELLED, "c2", {"priority": P.HIGH, "call_type": "bath",
                                                 "ended_by": "presence"}),
    ("101", "10:00:00", K.CALL_PLACED, "c3", {"priority": P.NORMAL, "call_type": "normal"}),
    ("101", "10:02:00", K.CALL_ESCALATED, "c3", {"priority": P.NORMAL, "call_type": "normal"}),
    ("101", "10:03:00", K.CALL_CLAIMED, "c3", {"priority": P.NORMAL, "call_type": "normal",
                                               "by": "bob"}),
    ("101", "10:05:00", K.CALL_CANCELLED, "c3", {"priority": P.NORMAL, "call_type": "normal",
                                                 "by": "bob", "ended_by": "cancel"}),
    ("103", "11:00:00", K.CALL_PLACED, "c4", {"priority": P.NORMAL, "call_type": "normal"}),
    ("103", "11:00:10", K.CALL_PRIORITY_RAISED, "c4", {"priority": P.EMERGENCY,
                                                       "call_type": "emergency"}),
    ("103", "11:00:40", K.PRESENCE_STARTED, None, {}),
    ("103", "11:01:00", K.CALL_CLAIMED, "c4", {"priority": P.EMERGENCY,
                                               "call_type": "emergency", "by": "alice"}),
    ("103", "11:04:00", K.CALL_CANCELLED, "c4", {"priority": P.EMERGENCY,
                                                 "call_type": "emergency", "by": "alice",
                                                 "ended_by": "cancel"}),
    ("104", "12:00:00", K.CALL_PLACED, "c8", {"priority": P.TROUBLE, "call_type": "test"}),
    ("104", "12:00:30", K.CALL_CANCELLED, "c8", {"priority": P.TROUBLE, "call_type": "test",
                                                 "ended_by": "cancel"}),
    ("102", "20:00:00", K.CALL_PLACED, "c5", {"priority": P.NORMAL, "call_type": "normal"}),
    ("102", "20:00:20", K.CALL_CANCELLED, "c5", {"priority": P.NORMAL, "call_type": "normal",
                                                 "ended_by": "cancel"}),
    ("103", "21:00:00", K.CALL_PLACED, "c6", {"priority": P.TROUBLE, "call_type": "cord_out"}),
    ("101", "23:30:00", K.CALL_PLACED, "c7", {"priority": P.HIGH, "call_type": "assist"}),
    ("101", "23:31:30", K.CALL_CLAIMED, "c7", {"priority": P.HIGH, "call_type": "assist",
                                               "by": "bob"}),
    ("101", DAY + timedelta(days=1, minutes=10), K.CALL_CANCELLED, "c7",
     {"priority": P.HIGH, "call_type": "assist", "by": "bob", "ended_by": "cancel"}),
]  # fmt: skip

# the ordinary events a room sends with the calls (the reports never read them)
_OTHER_SCRIPT: list[tuple[str, str, K, dict[str, Any]]] = [
    ("101", "10:08:00", K.DAEMON_STARTED, {}),
    ("104", "13:00:00", K.MONITOR_LINK_LOST, {}),
    ("104", "13:05:00", K.MONITOR_LINK_RESTORED, {}),
    ("104", "14:00:00", K.MONITOR_LINK_LOST, {}),
    ("104", "14:00:30", K.MONITOR_LINK_RESTORED, {}),
    ("101", "12:00:00", K.PHASE_CHANGED, {"phase": "infusion", "session_id": "s1"}),
]


def at(when: str | datetime) -> datetime:
    """A time of the scripted day ("HH:MM:SS" on DAY, UTC), or the datetime itself."""
    if isinstance(when, datetime):
        return when
    h, m, s = (int(x) for x in when.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


def _event(room: str, seq: int, when: datetime, kind: K, call_id: str | None,
           fields: dict[str, Any]) -> messages.EventMessage:  # fmt: skip
    fields = dict(fields)
    detail: dict[str, Any] = {}
    for name in ("call_type", "ended_by"):
        if name in fields:
            detail[name] = fields.pop(name)
    return messages.EventMessage(
        site=SITE, room=room, epoch=EPOCH, seq=seq, ts=when, clock_synced=True, kind=kind,
        call_id=call_id, detail=detail, **fields,
    )  # fmt: skip


def day_events() -> list[messages.EventMessage]:
    """Every event of the scripted day (calls and the rest), seq per room in time order."""
    script = [(r, at(t), k, c, f) for r, t, k, c, f in _CALL_SCRIPT]
    script += [(r, at(t), k, None, f) for r, t, k, f in _OTHER_SCRIPT]
    script.sort(key=lambda x: x[1])
    seqs: dict[str, int] = {}
    out = []
    for room, when, kind, call_id, fields in script:
        seqs[room] = seqs.get(room, 0) + 1
        out.append(_event(room, seqs[room], when, kind, call_id, fields))
    return out


def as_row(m: messages.EventMessage) -> dict[str, Any]:
    """An event as `LogStore.report_rows` returns it."""
    return {
        "room": m.room, "epoch": m.epoch, "seq": m.seq, "ts": format_ts(m.ts),
        "kind": m.kind.value, "call_id": m.call_id,
        "priority": m.priority.value if m.priority else None, "by": m.by,
        "detail": dict(m.detail or {}),
    }  # fmt: skip


def call_rows() -> list[dict[str, Any]]:
    """The `call_events` rows of the day, oldest first (what the store returns)."""
    kinds = {"call_placed", "call_priority_raised", "call_claimed", "call_escalated",
             "call_cancelled", "presence_started"}  # fmt: skip
    return [as_row(m) for m in day_events() if m.kind.value in kinds]


def _health(room: str, seq: int, when: str, depth: int, oldest: float | None) -> Any:
    return messages.HealthMessage(
        site=SITE, room=room, epoch=EPOCH, seq=seq, ts=at(when), clock_synced=True,
        monitor={"status": "ok"}, buttons="ok", lights="ok",
        outbox={"depth": depth, "cap": 1000, "oldest_age_s": oldest}, uptime_s=10,
        version="test",
    )  # fmt: skip


# Room reliability history (times UTC; availability times are the logger's receive times):
# 101 online the day before, offline 10:00:00-10:08:00 (480 s), offline again 22:00:00 and
#     never back (open: to the day's end, 7200 s); one restart (10:08); outbox peak 12 at
#     10:08:05 with the oldest message waiting 95.5 s (then 3, then 0);
# 102 offline since the day before, online 00:30:00 (1800 s from the day's start);
# 103 two messages quarantined (bad JSON);
# 104 monitor lost 13:00:00-13:05:00 and 14:00:00-14:00:30 (two, 330 s).
AVAILABILITY = [
    ("101", DAY - timedelta(hours=12), "online"),
    ("102", DAY - timedelta(hours=1), "offline"),
    ("102", at("00:30:00"), "online"),
    ("101", at("10:00:00"), "offline"),
    ("101", at("10:08:00"), "online"),
    ("101", at("22:00:00"), "offline"),
]
HEALTH = [("101", 900, "10:00:00", 0, None), ("101", 901, "10:08:05", 12, 95.5),
          ("101", 902, "10:08:10", 3, 1.0), ("101", 903, "10:09:00", 0, None)]  # fmt: skip


def day_batch() -> list[tuple[Classified, str]]:
    """Everything of the day as the logger's batches hold it: events, health, availability
    (received at its time) and two bad payloads from 103."""
    items = [received(topics.events(SITE, m.room), m, site=SITE) for m in day_events()]
    items += [
        received(topics.health(SITE, room), _health(room, seq, when, depth, oldest), site=SITE)
        for room, seq, when, depth, oldest in HEALTH
    ]
    items += [
        received(topics.availability(SITE, room), status.encode(), site=SITE, rx=format_ts(t))
        for room, t, status in AVAILABILITY
    ]
    items += [
        received(topics.vitals(SITE, "103"), b"{broken", site=SITE, rx=format_ts(at(t)))
        for t in ("15:00:00", "15:00:01")
    ]
    return items


def audit_script() -> list[tuple[datetime, str, str, str | None, str | None, str]]:
    """Board audit rows of the day: (at, name, action, room, payload, result)."""
    return [
        (at("07:55:00"), "alice", "login", None, None, "ok"),
        (at("08:00:30"), "alice", "claim", "101", json.dumps({"call_id": "c1"}), "sent"),
        (at("10:03:00"), "bob", "claim", "101", json.dumps({"call_id": "c3"}), "sent"),
        (at("12:00:00"), "rita", "assign", "102", json.dumps({"nurse": "alice"}), "ok"),
        (at("12:30:00"), "victor", "refused", "103", None, "viewer"),
        (DAY - timedelta(hours=2), "alice", "login", None, None, "ok"),  # the day before
    ]
