"""The logger's classification and SQLite writes, without a broker (real SQLite files)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.logger.ingest import Accepted, Availability, Command, Ignored, Rejected, classify
from broker.logger.store import LedgerCounts, StoreError, open_store
from broker.logger.store.sqlite import SqliteLogStore
from broker.logger.store.sqlite_batch import BatchWriter
from broker.logger.store.sqlite_schema import SCHEMA_VERSION, open_db
from contract import messages, topics
from tests.support.clinic_rooms import event, vitals

SITE = "s1"
T0 = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)
RX = "2026-01-01T08:00:00.000Z"


@pytest.fixture
def store(tmp_path: Path) -> SqliteLogStore:
    got = open_store(tmp_path / "log.db")
    assert isinstance(got, SqliteLogStore)
    return got


def put(store: SqliteLogStore, topic: str, payload: bytes | str, max_bytes: int = 65536) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    store.write_batch([(classify(topic, data, SITE, max_bytes), RX)])


def q(store: SqliteLogStore, sql: str, *args: object) -> list[tuple[object, ...]]:
    assert store.conn is not None
    return store.conn.execute(sql, args).fetchall()


def test_schema_is_versioned_and_migrations_are_idempotent(tmp_path: Path) -> None:
    open_db(tmp_path / "a.db").close()
    conn = open_db(tmp_path / "a.db")
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        open_db(tmp_path / "a.db")


def test_vitals_stored_once_and_replay_ignored(store: SqliteLogStore) -> None:
    topic = topics.vitals(SITE, "101")
    payload = vitals(SITE, "101", 1, spo2=95.5).model_dump_json()
    put(store, topic, payload)
    put(store, topic, payload)  # QoS 1 redelivery / outbox resend
    assert q(store, "SELECT seq, spo2, pulse_rate, heart_rate FROM vitals") == [
        (1, 95.5, 72.0, None)
    ]
    assert q(store, "SELECT COUNT(*) FROM messages") == [(1,)]
    assert q(store, "SELECT COUNT(*) FROM quarantine") == [(0,)]


def test_duplicate_seq_with_different_content_is_quarantined(store: SqliteLogStore) -> None:
    topic = topics.vitals(SITE, "101")
    put(store, topic, vitals(SITE, "101", 5, spo2=95).model_dump_json())
    put(store, topic, vitals(SITE, "101", 5, spo2=80).model_dump_json())
    put(
        store,
        topics.events(SITE, "101"),
        event(SITE, "101", 5, messages.EventKind.DAEMON_STARTED).model_dump_json(),
    )
    assert q(store, "SELECT spo2 FROM vitals") == [(95.0,)]
    reasons = [r[0] for r in q(store, "SELECT reason FROM quarantine")]
    assert len(reasons) == 2
    assert all(r.startswith("duplicate seq with different content") for r in reasons)
    assert q(store, "SELECT COUNT(*) FROM events") == [(0,)]


@pytest.mark.parametrize(
    ("topic", "payload", "reason_part"),
    [
        ("clinic/s1/room/101/vitals", b"{not json", "invalid JSON"),
        ("clinic/s1/room/101/vitals", b"\xff\xfe", "invalid JSON"),
        ("clinic/s1/room/101/vitals", None, "spo2"),  # out of range, see below
        ("clinic/s1/room/101/events", b'{"v":1}', "site"),
        ("clinic/s1/room/101/nonsense", b"{}", "unknown topic leaf 'nonsense'"),
        ("clinic/s1/elsewhere", b"{}", "unknown topic"),
        ("clinic/s2/room/101/vitals", b"{}", "site"),
        ("clinic/s1/room/101/availability", b"maybe", "online/offline"),
        ("clinic/s1/room/101/cmd/reboot", b"{}", "unknown topic leaf 'cmd/reboot'"),
        ("clinic/s1/room/101/cmd/claim", b'{"by":"x"}', "call_id"),
    ],
)
def test_bad_payloads_go_to_quarantine_with_reason(
    store: SqliteLogStore, topic: str, payload: bytes | None, reason_part: str
) -> None:
    if payload is None:
        good = json.loads(vitals(SITE, "101", 1).model_dump_json())
        good["spo2"] = 140
        payload = json.dumps(good).encode()
    put(store, topic, payload)
    rows = q(store, "SELECT topic, reason, raw, size FROM quarantine")
    assert len(rows) == 1
    assert rows[0][0] == topic
    assert reason_part in str(rows[0][1])
    assert rows[0][2] == payload and rows[0][3] == len(payload)
    assert q(store, "SELECT COUNT(*) FROM messages") == [(0,)]


def test_topic_envelope_mismatch_is_quarantined(store: SqliteLogStore) -> None:
    put(store, topics.vitals(SITE, "101"), vitals(SITE, "102", 1).model_dump_json())
    (reason,) = q(store, "SELECT reason FROM quarantine")[0]
    assert "topic/envelope mismatch" in str(reason) and "'102'" in str(reason)
    assert q(store, "SELECT COUNT(*) FROM vitals") == [(0,)]


def test_oversize_payload_is_refused_with_reason(store: SqliteLogStore) -> None:
    big = b"x" * 5000
    put(store, topics.vitals(SITE, "101"), big, max_bytes=1024)
    (reason, size) = q(store, "SELECT reason, size FROM quarantine")[0]
    assert str(reason).startswith("oversize: 5000 bytes > limit 1024") and size == 5000


def test_classify_kinds() -> None:
    assert isinstance(classify(topics.availability(SITE, "1"), b"online", SITE, 100), Availability)
    cmd = json.dumps({"call_id": "c1", "by": "alice"}).encode()
    assert isinstance(classify(topics.cmd(SITE, "1", "claim"), cmd, SITE, 1000), Command)
    assert isinstance(classify(topics.sim_button(SITE, "1"), b"{}", SITE, 1000), Ignored)
    assert isinstance(classify("other/topic", b"{}", SITE, 1000), Rejected)
    v = vitals(SITE, "1", 1).model_dump_json().encode()
    assert isinstance(classify(topics.vitals(SITE, "1"), v, SITE, 10_000), Accepted)


def test_call_lifecycle_gives_response_times(store: SqliteLogStore) -> None:
    ev = topics.events(SITE, "101")
    K = messages.EventKind
    put(
        store,
        ev,
        event(
            SITE,
            "101",
            1,
            K.CALL_PLACED,
            call_id="c1",
            priority=messages.CallPriority.NORMAL,
            ts=T0,
        ).model_dump_json(),
    )
    put(
        store,
        ev,
        event(
            SITE, "101", 2, K.CALL_ESCALATED, call_id="c1", ts=T0 + timedelta(seconds=180)
        ).model_dump_json(),
    )
    put(
        store,
        ev,
        event(
            SITE,
            "101",
            3,
            K.CALL_CLAIMED,
            call_id="c1",
            by="alice",
            ts=T0 + timedelta(seconds=200.5),
        ).model_dump_json(),
    )
    put(
        store,
        ev,
        event(
            SITE,
            "101",
            4,
            K.CALL_CANCELLED,
            call_id="c1",
            by="nurse",
            ts=T0 + timedelta(seconds=260),
        ).model_dump_json(),
    )
    row = q(
        store,
        "SELECT status, priority, claimed_by, response_s, resolved_s, escalated_at "
        "FROM calls WHERE call_id = 'c1'",
    )
    assert row == [("cancelled", "normal", "alice", 200.5, 260.0, "2026-01-01T08:03:00.000Z")]
    assert q(store, "SELECT COUNT(*) FROM events WHERE call_id = 'c1'") == [(4,)]


def test_call_snapshot_and_events_in_any_order(store: SqliteLogStore) -> None:
    snap = messages.CallMessage(
        site=SITE,
        room="101",
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
    put(store, topics.call(SITE, "101"), snap.model_dump_json())
    put(
        store,
        topics.events(SITE, "101"),
        event(
            SITE, "101", 1, messages.EventKind.CALL_PLACED, call_id="c9", ts=T0
        ).model_dump_json(),
    )
    assert q(store, "SELECT status, priority, response_s FROM calls") == [
        ("claimed", "emergency", 30.0)
    ]
    assert q(store, "SELECT call_status, call_seq FROM room_state") == [("claimed", 3)]


def test_session_timeline(store: SqliteLogStore) -> None:
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
            ).model_dump_json(),
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


def test_room_state_keeps_latest_by_seq_and_availability(store: SqliteLogStore) -> None:
    st = topics.state(SITE, "101")
    for seq, phase in ((2, messages.Phase.INFUSION), (1, messages.Phase.PRE_CHECK)):
        msg = messages.StateMessage(
            site=SITE,
            room="101",
            seq=seq,
            ts=T0,
            clock_synced=True,
            phase=phase,
            session_id="s-a",
            since=T0,
        )
        put(store, st, msg.model_dump_json())
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


def test_retention_deletes_old_vitals_in_small_batches(store: SqliteLogStore) -> None:
    topic = topics.vitals(SITE, "101")
    old = T0 - timedelta(days=40)
    items = []
    for seq in range(1, 26):
        ts = old if seq <= 23 else T0
        msg = messages.VitalsMessage(
            site=SITE, room="101", seq=seq, ts=ts, clock_synced=True, spo2=97, protocol="masimo"
        )
        items.append((classify(topic, msg.model_dump_json().encode(), SITE, 65536), RX))
    store.write_batch(items)
    put(
        store,
        topics.events(SITE, "101"),
        event(SITE, "101", 99, messages.EventKind.DAEMON_STARTED, ts=old).model_dump_json(),
    )
    deleted = store.delete_old_vitals("2025-12-01T00:00:00.000Z", batch=5, max_batches=3)
    assert deleted == 15  # bounded per pass
    deleted = store.delete_old_vitals("2025-12-01T00:00:00.000Z", batch=5, max_batches=100)
    assert deleted == 8
    assert q(store, "SELECT seq FROM vitals ORDER BY seq") == [(24,), (25,)]
    assert q(store, "SELECT COUNT(*) FROM messages WHERE kind = 'vitals'") == [(2,)]
    assert q(store, "SELECT COUNT(*) FROM events") == [(1,)]  # only vitals expire


def test_a_failed_batch_commits_nothing(store: SqliteLogStore) -> None:
    good = classify(
        topics.vitals(SITE, "101"), vitals(SITE, "101", 1).model_dump_json().encode(), SITE, 65536
    )
    q(
        store,
        "CREATE TRIGGER boom BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
    )
    bad = classify(
        topics.events(SITE, "101"),
        event(SITE, "101", 2, messages.EventKind.DAEMON_STARTED).model_dump_json().encode(),
        SITE,
        65536,
    )
    with pytest.raises(StoreError, match="disk trouble") as raised:
        store.write_batch([(good, RX), (bad, RX)])
    assert isinstance(raised.value.__cause__, sqlite3.Error)
    assert q(store, "SELECT COUNT(*) FROM messages") == [(0,)]


def test_a_bug_on_one_message_quarantines_it_and_keeps_the_rest(
    store: SqliteLogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.logger.service import Inbound, Logger

    def broken(self: BatchWriter, *args: object) -> None:
        raise KeyError("simulated bug")

    monkeypatch.setattr(BatchWriter, "_event", broken)
    raw_v = vitals(SITE, "101", 1).model_dump_json().encode()
    raw_e = event(SITE, "101", 2, messages.EventKind.DAEMON_STARTED).model_dump_json().encode()
    batch = [
        Inbound(topics.vitals(SITE, "101"), raw_v, 1, 1, 1, 0.0),
        Inbound(topics.events(SITE, "101"), raw_e, 2, 1, 1, 0.0),
    ]
    items = [(classify(i.topic, i.payload, SITE, 65536), RX) for i in batch]
    stats = Logger._write(store, batch, items)
    assert stats.inserted == 1 and stats.quarantined == 1
    assert q(store, "SELECT seq FROM messages") == [(1,)]
    (reason, raw) = q(store, "SELECT reason, raw FROM quarantine")[0]
    assert str(reason).startswith("logger error: KeyError") and raw == raw_e


def test_the_store_answers_the_board_exports_and_audits(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    writer = open_store(f"sqlite://{path}")
    ev = topics.events(SITE, "101")
    K = messages.EventKind
    items = [
        (classify(topics.vitals(SITE, "101"), vitals(SITE, "101", 1).model_dump_json().encode(),
                  SITE, 65536), RX),
        (classify(ev, event(SITE, "101", 2, K.CALL_PLACED, call_id="c1", ts=T0)
                  .model_dump_json().encode(), SITE, 65536), RX),
        (classify(ev, event(SITE, "101", 3, K.ALERT_RAISED, ts=T0).model_dump_json().encode(),
                  SITE, 65536), RX),
        (classify(topics.vitals(SITE, "101"), b"{", SITE, 65536), RX),
    ]  # fmt: skip
    stats = writer.write_batch(items)
    assert (stats.inserted, stats.quarantined) == (3, 1)
    reader = open_store(path, readonly=True)
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
    writer.close()
    reader.close()


def test_a_read_only_store_of_a_missing_file_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    store = open_store(path, readonly=True)
    assert store.stored_seqs(SITE, "101") == set() and store.rooms() == []
    assert list(store.export_rows("vitals", SITE)) == [] and store.session(SITE, "1", "x") is None
    assert store.counts(SITE).quarantined == 0
    assert not path.exists()
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_store("postgresql://db.clinic.lan/roomctl")
    with pytest.raises(ValueError, match="unknown store URL"):
        open_store("mysql://x/y")
