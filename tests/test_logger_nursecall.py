"""The logger and schema 2 (issue 14): every call of a retained `call` gets its row, the new
event kinds are stored, and rooms not yet upgraded (schema 1) are still accepted."""

from __future__ import annotations

import json
from datetime import timedelta

from broker.logger.ingest import Accepted, Rejected
from broker.logger.store.sqlite import SqliteLogStore
from contract import messages, topics
from tests.support.clinic_rooms import event
from tests.support.logger_store import SITE, T0, put, q, received

ENV = {"site": SITE, "room": "101", "epoch": "0000000000000001", "clock_synced": True}


def test_every_active_call_of_a_schema_2_call_message_gets_its_row(
    store: SqliteLogStore,
) -> None:
    M = messages
    snap = M.CallMessage(
        **ENV,
        seq=4,
        ts=T0 + timedelta(seconds=40),
        call_id="e1",
        priority=M.CallPriority.EMERGENCY,
        status=M.CallStatus.PLACED,
        placed_at=T0 + timedelta(seconds=10),
        type=M.CallType.EMERGENCY,
        tier=1,
        calls=[
            M.ActiveCall(
                call_id="e1",
                type=M.CallType.EMERGENCY,
                priority=M.CallPriority.EMERGENCY,
                status=M.CallStatus.PLACED,
                placed_at=T0 + timedelta(seconds=10),
            ),
            M.ActiveCall(
                call_id="b1",
                type=M.CallType.BATH,
                priority=M.CallPriority.HIGH,
                status=M.CallStatus.CLAIMED,
                tier=2,
                placed_at=T0,
                escalated_at=T0 + timedelta(seconds=60),
                claimed_by="nurse.kim",
                claimed_at=T0 + timedelta(seconds=70),
            ),
        ],
    )
    put(store, topics.call(SITE, "101"), snap)
    rows = q(store, "SELECT call_id, status, priority, claimed_by, response_s FROM calls")
    assert sorted(rows) == [
        ("b1", "claimed", "high", "nurse.kim", 70.0),
        ("e1", "placed", "emergency", None, None),
    ]


def test_new_event_kinds_are_stored_with_their_detail(store: SqliteLogStore) -> None:
    ev = topics.events(SITE, "101")
    K = messages.EventKind
    put(store, ev, event(SITE, "101", 1, K.PRESENCE_STARTED, ts=T0, detail={"answered": 1}))
    put(store, ev, event(SITE, "101", 2, K.CORD_FLAPPING, ts=T0, detail={"edges": 6}))
    put(store, ev, event(SITE, "101", 3, K.INPUT_IGNORED, ts=T0, detail={"input": "call"}))
    kinds = q(store, "SELECT kind, detail FROM events ORDER BY seq")
    assert [k for k, _ in kinds] == ["presence_started", "cord_flapping", "input_ignored"]
    assert json.loads(str(kinds[0][1])) == {"answered": 1}


def test_a_room_not_yet_upgraded_is_still_accepted(store: SqliteLogStore) -> None:
    """Schema 1, as a room before issue 14 sends it: no `calls`, no presence, `v: 1`."""
    old_call = {
        "v": 1,
        **ENV,
        "seq": 1,
        "ts": "2026-01-01T08:00:05.000Z",
        "call_id": "c1",
        "priority": "infusion",
        "status": "placed",
        "placed_at": "2026-01-01T08:00:05.000Z",
        "claimed_by": None,
        "claimed_at": None,
        "escalated_at": None,
    }
    old_state = {
        "v": 1,
        **ENV,
        "seq": 2,
        "ts": "2026-01-01T08:00:05.000Z",
        "phase": "infusion",
        "since": "2026-01-01T08:00:00.000Z",
        "alerts": [
            {
                "name": "spo2_low",
                "field": "spo2",
                "severity": "high",
                "value": 88.0,
                "threshold": 92.0,
                "since": "2026-01-01T08:00:01.000Z",
            }
        ],
    }
    for topic, body in (
        (topics.call(SITE, "101"), old_call),
        (topics.state(SITE, "101"), old_state),
    ):
        got, _ = received(topic, json.dumps(body))
        assert isinstance(got, Accepted), got
        store.write_batch([(got, "2026-01-01T08:00:06.000Z")])
    assert q(store, "SELECT call_id, status, priority FROM calls") == [("c1", "placed", "infusion")]
    assert q(store, "SELECT COUNT(*) FROM quarantine") == [(0,)]


def test_an_unknown_schema_version_is_refused_naming_the_field() -> None:
    body = {"v": 3, **ENV, "seq": 1, "ts": "2026-01-01T08:00:05.000Z", "status": "idle"}
    got, _ = received(topics.call(SITE, "101"), json.dumps(body))
    assert isinstance(got, Rejected) and "v" in got.reason
