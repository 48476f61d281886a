"""The logger's store, the derived tables and the read side: call response times, sessions and
room state from events in any order, and the queries the board, exports and audits use, on a
writable and a read-only store (a real SQLite file and a real PostgreSQL database, no broker).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker.logger.store import LedgerCounts, LogStore, StoreError, open_store
from contract import messages, topics
from tests.support.clinic_rooms import event, vitals
from tests.support.logger_store import SITE, T0, open_like, put, q, received
from tests.support.postgres import PgDatabases


def test_call_lifecycle_gives_response_times(store: LogStore) -> None:
    ev = topics.events(SITE, "101")
    K = messages.EventKind
    lifecycle: list[tuple[messages.EventKind, float, dict[str, object]]] = [
        (K.CALL_PLACED, 0, {"priority": messages.CallPriority.NORMAL}),
        (K.CALL_ESCALATED, 180, {}),
        (K.CALL_CLAIMED, 200.5, {"by": "alice"}),
        (K.CALL_CANCELLED, 260, {"by": "nurse"}),
    ]
    for seq, (kind, after_s, fields) in enumerate(lifecycle, start=1):
        at = T0 + timedelta(seconds=after_s)
        put(store, ev, event(SITE, "101", seq, kind, call_id="c1", ts=at, **fields))
    row = q(
        store,
        "SELECT status, priority, claimed_by, response_s, resolved_s, escalated_at "
        "FROM calls WHERE call_id = 'c1'",
    )
    assert row == [("cancelled", "normal", "alice", 200.5, 260.0, "2026-01-01T08:03:00.000Z")]
    assert q(store, "SELECT COUNT(*) FROM events WHERE call_id = 'c1'") == [(4,)]


def test_call_snapshot_and_events_in_any_order(store: LogStore) -> None:
    snap = messages.CallMessage(
        site=SITE,
        room="101",
        epoch="0000000000000001",
        seq=3,
        ts=T0 + timedelta(seconds=30),
        clock_synced=True,
        call_id="c9",
        priority=messages.CallPriority.EMERGENCY,
        status=messages.CallStatus.CLAIMED,
        placed_at=T0,
        claimed_by="bob",
        claimed_at=T0 + timedelta(seconds=30),
    )
    put(store, topics.call(SITE, "101"), snap)
    put(
        store,
        topics.events(SITE, "101"),
        event(SITE, "101", 1, messages.EventKind.CALL_PLACED, call_id="c9", ts=T0),
    )
    assert q(store, "SELECT status, priority, response_s FROM calls") == [
        ("claimed", "emergency", 30.0)
    ]
    assert q(store, "SELECT call_status, call_seq FROM room_state") == [("claimed", 3)]


def test_session_timeline(store: LogStore) -> None:
    ev = topics.events(SITE, "101")
    P = messages.Phase
    steps = [
        (P.PRE_CHECK, P.IDLE, 0),
        (P.INFUSION, P.PRE_CHECK, 600),
        (P.RECOVERY, P.INFUSION, 600 + 3000),
        (P.DISCHARGE_READY, P.RECOVERY, 3600 + 2400),
        (P.IDLE, P.DISCHARGE_READY, 6000 + 300),
    ]
    for seq, (phase, prev, t) in enumerate(steps, start=1):
        put(
            store,
            ev,
            event(
                SITE,
                "101",
                seq,
                messages.EventKind.PHASE_CHANGED,
                phase=phase,
                from_phase=prev,
                session_id="sess-1",
                by="alice",
                ts=T0 + timedelta(seconds=t),
            ),
        )
    row = q(
        store,
        "SELECT phase, started_at, infusion_at, recovery_at, ended_at, infusion_s, "
        "recovery_s FROM sessions",
    )
    assert row == [
        (
            "idle",
            "2026-01-01T08:00:00.000Z",
            "2026-01-01T08:10:00.000Z",
            "2026-01-01T09:00:00.000Z",
            "2026-01-01T09:45:00.000Z",
            3000.0,
            2400.0,
        )
    ]


def test_room_state_keeps_latest_by_seq_and_availability(store: LogStore) -> None:
    st = topics.state(SITE, "101")
    for seq, phase in ((2, messages.Phase.INFUSION), (1, messages.Phase.PRE_CHECK)):
        msg = messages.StateMessage(
            site=SITE,
            room="101",
            epoch="0000000000000001",
            seq=seq,
            ts=T0,
            clock_synced=True,
            phase=phase,
            session_id="s-a",
            since=T0,
        )
        put(store, st, msg)
    put(store, topics.availability(SITE, "101"), "online")
    put(store, topics.availability(SITE, "101"), "online")
    put(store, topics.availability(SITE, "101"), "offline")
    assert q(store, "SELECT phase, state_seq, availability, last_seq FROM room_state") == [
        ("infusion", 2, "offline", 2)
    ]
    assert [r[0] for r in q(store, "SELECT status FROM availability_log ORDER BY id")] == [
        "online",
        "offline",
    ]


def test_the_store_answers_the_board_exports_and_audits(store: LogStore, tmp_path: Path) -> None:
    writer = store
    ev = topics.events(SITE, "101")
    K = messages.EventKind
    items = [
        received(topics.vitals(SITE, "101"), vitals(SITE, "101", 1)),
        received(ev, event(SITE, "101", 2, K.CALL_PLACED, call_id="c1", ts=T0)),
        received(ev, event(SITE, "101", 3, K.ALERT_RAISED, ts=T0)),
        received(topics.vitals(SITE, "101"), b"{"),
    ]
    stats = writer.write_batch(items)
    assert (stats.inserted, stats.quarantined) == (3, 1)
    reader = open_like(store, tmp_path, readonly=True)
    with pytest.raises(StoreError, match="read-only"):
        reader.write_batch([])
    for store in (writer, reader):
        assert store.stored_seqs(SITE, "101") == {1, 2, 3}
        assert store.counts(SITE) == LedgerCounts(
            vitals=1, events=2, alerts_raised=1, duplicate_seqs=0, quarantined=1
        )
        assert [r["seq"] for r in store.vitals(SITE, "101", "2000-01-01")] == [1]
        assert [r["kind"] for r in store.events(SITE, "101", "2000-01-01")] == [
            "call_placed",
            "alert_raised",
        ]
        assert isinstance(store.events(SITE, "101", "2000-01-01")[0]["detail"], dict)
        (call,) = store.calls(SITE)
        assert call["call_id"] == "c1" and call["status"] == "placed"
        assert store.calls(SITE, "2000-01-01", "2000-01-02") == []
        assert [r["room"] for r in store.rooms()] == ["101"]
        (bad,) = store.export_rows("quarantine", SITE)
        assert bad["raw"] == b"{" and "id" not in bad
        assert "id" not in store.export_columns("quarantine")
        with pytest.raises(ValueError, match="kind must be one of"):
            store.export_columns("users")
    reader.close()


def test_a_sqlite_url_names_a_file(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_store(f"sqlite://{path}").close()
    assert path.exists()


def test_a_read_only_store_of_a_missing_file_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    store = open_store(path, readonly=True)
    assert store.stored_seqs(SITE, "101") == set() and store.rooms() == []
    assert list(store.export_rows("vitals", SITE)) == [] and store.session(SITE, "1", "x") is None
    assert store.counts(SITE).quarantined == 0
    assert not path.exists()
    with pytest.raises(ValueError, match="name the database"):
        open_store("postgresql://db.clinic.lan")
    with pytest.raises(ValueError, match="unknown store URL"):
        open_store("mysql://x/y")
    # a URL that went through Path on its way (Path folds '//') is refused, never created
    with pytest.raises(ValueError, match="URL made into a file name"):
        open_store(Path("postgresql://db.clinic.lan/roomctl"))
    assert not Path("postgresql:").exists()


def test_a_read_only_store_of_an_empty_postgres_database_is_empty_and_creates_nothing(
    pg_databases: PgDatabases,
) -> None:
    url = pg_databases.fresh(migrated=False)
    store = open_store(url, readonly=True)
    try:
        assert store.stored_seqs(SITE, "101") == set() and store.rooms() == []
        assert list(store.export_rows("vitals", SITE)) == []
        assert store.counts(SITE).quarantined == 0 and store.export_columns("vitals") == []
        with pytest.raises(StoreError, match="read-only"):
            store.write_batch([])
        assert q(store, "SELECT to_regclass('schema_version') IS NULL") == [(True,)]
        writer = open_store(url)  # the logger arrives: the reader sees its rows at once
        writer.write_batch([received(topics.vitals(SITE, "101"), vitals(SITE, "101", 1))])
        writer.close()
        assert store.stored_seqs(SITE, "101") == {1}
    finally:
        store.close()
        pg_databases.drop(url)


def test_an_unreachable_postgres_server_is_a_store_error_without_the_password() -> None:
    from broker.mosquitto.run import free_port

    url = f"postgresql://roomctl:s3cret@127.0.0.1:{free_port()}/roomctl"
    with pytest.raises(StoreError) as raised:
        open_store(url)
    assert "s3cret" not in str(raised.value) and "roomctl@127.0.0.1" in str(raised.value)
    reader = open_store(url, readonly=True)  # a board starts even while the server is down
    with pytest.raises(StoreError):
        reader.rooms()
