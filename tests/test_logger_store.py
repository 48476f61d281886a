"""The logger's store, the write side: classification, the ledger (once per seq, duplicates and
bad input to quarantine), retention and failed batches, without a broker (real SQLite files).
What the store derives (calls, sessions, room state) and answers is in test_logger_store_read.py.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from broker.logger.ingest import Accepted, Availability, Command, Ignored, Rejected, classify
from broker.logger.store import StoreError
from broker.logger.store.sqlite import SqliteLogStore
from broker.logger.store.sqlite_batch import BatchWriter
from broker.logger.store.sqlite_schema import SCHEMA_VERSION, open_db
from contract import messages, topics
from tests.support.clinic_rooms import event, vitals
from tests.support.logger_store import SITE, T0, put, q, received
from tests.support.mqtt import staff_command


def test_schema_is_versioned_and_migrations_are_idempotent(tmp_path: Path) -> None:
    open_db(tmp_path / "a.db").close()
    conn = open_db(tmp_path / "a.db")
    versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
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
    put(store, topic, vitals(SITE, "101", 5, spo2=95))
    put(store, topic, vitals(SITE, "101", 5, spo2=80))
    put(
        store,
        topics.events(SITE, "101"),
        event(SITE, "101", 5, messages.EventKind.DAEMON_STARTED),
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
    put(store, topics.vitals(SITE, "101"), vitals(SITE, "102", 1))
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
    cmd = json.dumps(staff_command(call_id="c1", by="alice")).encode()
    assert isinstance(classify(topics.cmd(SITE, "1", "claim", "board"), cmd, SITE, 1000), Command)
    assert isinstance(classify(topics.sim_button(SITE, "1"), b"{}", SITE, 1000), Ignored)
    assert isinstance(classify("other/topic", b"{}", SITE, 1000), Rejected)
    v = vitals(SITE, "1", 1).model_dump_json().encode()
    assert isinstance(classify(topics.vitals(SITE, "1"), v, SITE, 10_000), Accepted)


def test_retention_deletes_old_vitals_in_small_batches(store: SqliteLogStore) -> None:
    topic = topics.vitals(SITE, "101")
    old = T0 - timedelta(days=40)
    items = []
    for seq in range(1, 26):
        ts = old if seq <= 23 else T0
        msg = messages.VitalsMessage(
            site=SITE,
            room="101",
            epoch="0000000000000001",
            seq=seq,
            ts=ts,
            clock_synced=True,
            spo2=97,
            protocol="masimo",
        )
        items.append(received(topic, msg))
    store.write_batch(items)
    put(
        store,
        topics.events(SITE, "101"),
        event(SITE, "101", 99, messages.EventKind.DAEMON_STARTED, ts=old),
    )
    deleted = store.delete_old_vitals("2025-12-01T00:00:00.000Z", batch=5, max_batches=3)
    assert deleted == 15  # bounded per pass
    deleted = store.delete_old_vitals("2025-12-01T00:00:00.000Z", batch=5, max_batches=100)
    assert deleted == 8
    assert q(store, "SELECT seq FROM vitals ORDER BY seq") == [(24,), (25,)]
    assert q(store, "SELECT COUNT(*) FROM messages WHERE kind = 'vitals'") == [(2,)]
    assert q(store, "SELECT COUNT(*) FROM events") == [(1,)]  # only vitals expire


def test_a_failed_batch_commits_nothing(store: SqliteLogStore) -> None:
    good = received(topics.vitals(SITE, "101"), vitals(SITE, "101", 1))
    q(
        store,
        "CREATE TRIGGER boom BEFORE INSERT ON events "
        "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END",
    )
    bad = received(
        topics.events(SITE, "101"), event(SITE, "101", 2, messages.EventKind.DAEMON_STARTED)
    )
    with pytest.raises(StoreError, match="disk trouble") as raised:
        store.write_batch([good, bad])
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
    items = [received(i.topic, i.payload) for i in batch]
    stats = Logger._write(store, batch, items)
    assert stats.inserted == 1 and stats.quarantined == 1
    assert q(store, "SELECT seq FROM messages") == [(1,)]
    (reason, raw) = q(store, "SELECT reason, raw FROM quarantine")[0]
    assert str(reason).startswith("logger error: KeyError") and raw == raw_e
