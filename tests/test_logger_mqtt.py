"""The logger against a real Mosquitto from the generated TLS config (logger in this process)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from broker.logger.config import LoggerConfig
from broker.logger.service import Logger
from contract import messages, topics
from tests.support.clinic import Clinic, open_session, running_logger
from tests.support.clinic_rooms import FakeRoom, db_count, db_seqs, poll, vitals

pytestmark = pytest.mark.broker


@pytest.fixture
def clinic_rooms() -> tuple[str, ...]:
    """Three rooms for the shared `clinic` fixture (tests/support/clinic_fixtures.py)."""
    return ("101", "102", "103")


def test_logger_stores_every_message_and_publishes_status(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    watcher = open_session(clinic.endpoint("staff-alice"))
    watcher.subscribe(topics.logger_status(clinic.site))
    logger = Logger(clinic.logger_config(db)).start()
    rooms: list[FakeRoom] = []
    try:
        assert logger.subscribed.wait(10)
        status = watcher.wait_message(topics.logger_status(clinic.site))
        assert status.payload == b"online"
        rooms = [FakeRoom(clinic, r) for r in ("101", "102")]
        for room in rooms:
            room.send_mix(120)
        for room in rooms:
            room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.inserted >= 240, timeout=30)
        assert db_seqs(db) == {"101": list(range(1, 121)), "102": list(range(1, 121))}
        assert db_count(db, "SELECT COUNT(*) FROM events") == 24
        assert db_count(db, "SELECT COUNT(*) FROM quarantine") == 0
        assert (
            db_count(
                db,
                "SELECT COUNT(*) FROM room_state WHERE availability = 'online' "
                "AND phase = 'infusion' AND last_seq = 120",
            )
            == 2
        )
    finally:
        for room in rooms:
            room.stop()
        logger.stop()
    # graceful stop says offline (the Will covers a crash)
    watcher.cond.acquire()
    try:
        assert watcher.cond.wait_for(
            lambda: any(m.payload == b"offline" for m in watcher.messages), 10
        )
    finally:
        watcher.cond.release()
    watcher.stop()


def test_bad_messages_through_the_broker_land_in_quarantine(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with (
        running_logger(clinic.logger_config(db, max_bytes=2048)) as logger,
        FakeRoom(clinic, "101") as room,
    ):
        assert logger.subscribed.wait(10)
        good = json.loads(vitals(clinic.site, "101", 1).model_dump_json())
        room.send("vitals", json.dumps(good).encode())
        room.send("vitals", b"{this is not json")
        bad_range = dict(good, seq=2, spo2=101)
        room.send("vitals", json.dumps(bad_range).encode())
        room.send("vitals", vitals(clinic.site, "102", 3).model_dump_json().encode())
        room.send("events", b"{" + b" " * 4000 + b"}")  # over the logger's 2048 bytes
        room.send("vitals", json.dumps(dict(good, spo2=50)).encode())  # seq 1 again, other content
        nan = json.dumps(dict(good, seq=4, spo2=float("nan")))  # json.dumps writes NaN
        assert "NaN" in nan
        room.send("vitals", nan.encode())
        room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.quarantined >= 6, timeout=30)
        import sqlite3

        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        reasons = [r[0] for r in conn.execute("SELECT reason FROM quarantine ORDER BY id")]
        conn.close()
        # in a batch, accepted messages are written after the others: compare unordered
        assert len(reasons) == 6, reasons
        expected = [
            lambda r: r.startswith("invalid JSON"),
            lambda r: r.startswith("validation error: spo2: Input should be less than"),
            lambda r: r.startswith("topic/envelope mismatch"),
            lambda r: r.startswith("oversize: 4002 bytes"),
            lambda r: r.startswith("duplicate seq with different content"),
            lambda r: r.startswith("validation error: spo2: Value error, NaN"),
        ]
        for check in expected:
            assert sum(1 for r in reasons if check(r)) == 1, reasons
        assert db_seqs(db) == {"101": [1]}


def test_size_limit_is_the_loggers_not_the_brokers(clinic: Clinic) -> None:
    # Mosquitto 2.0.11 answers an over-limit QoS 1 PUBLISH with PUBACK 0x95, which paho 2.2
    # rejects as a protocol error and reconnects to resend it forever: no broker limit.
    assert "message_size_limit 0" in clinic.conf.read_text()


def test_broker_restart_mid_stream_loses_nothing(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    logger = Logger(clinic.logger_config(db)).start()
    rooms = [FakeRoom(clinic, r) for r in ("101", "102", "103")]
    stop = threading.Event()
    threads = [threading.Thread(target=r.pump, args=(stop, 3000)) for r in rooms]
    try:
        assert logger.subscribed.wait(10)
        for t in threads:
            t.start()
        poll(lambda: db_count(db) >= 300, 30, "300 rows before the restart")
        clinic.broker.restart()
        before = db_count(db)
        poll(lambda: db_count(db) >= before + 300, 60, "300 more rows after the restart")
        stop.set()
        for t in threads:
            t.join(60)
        for r in rooms:
            r.wait_all_acked()
        expected = {r.room: list(range(1, r.seq + 1)) for r in rooms}
        total = sum(r.seq for r in rooms)
        poll(lambda: db_count(db) >= total, 60, f"all {total} rows")
        assert db_seqs(db) == expected
        assert db_count(db, "SELECT COUNT(*) FROM quarantine") == 0
    finally:
        stop.set()
        for r in rooms:
            r.stop()
        logger.stop()


def test_logger_down_then_back_gets_the_queued_messages(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    cfg = clinic.logger_config(db, client_id="logger-persist")
    first = Logger(cfg).start()
    assert first.subscribed.wait(10)
    first.stop()  # session stays on the broker (clean_start=False, expiry 7 days)
    room = FakeRoom(clinic, "103")
    try:
        room.send_mix(200)
        room.wait_all_acked()
        assert db_count(db) == 0
        second = Logger(cfg).start()
        try:
            assert second.wait_committed(lambda t: t.inserted >= 200, timeout=30)
            assert db_seqs(db) == {"103": list(range(1, 201))}
        finally:
            second.stop()
    finally:
        room.stop()


def test_queued_messages_survive_a_broker_restart_while_the_logger_is_down(
    clinic: Clinic, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    cfg = clinic.logger_config(db, client_id="logger-persist")
    first = Logger(cfg).start()
    assert first.subscribed.wait(10)
    first.stop()
    room = FakeRoom(clinic, "101")
    room.send_mix(150)
    room.wait_all_acked()
    room.stop()
    clinic.broker.restart()  # SIGTERM: Mosquitto saves sessions and queued messages first
    second = Logger(cfg).start()
    try:
        assert second.wait_committed(lambda t: t.inserted >= 150, timeout=30)
        assert db_seqs(db) == {"101": list(range(1, 151))}
    finally:
        second.stop()


def test_shared_subscription_group(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with (
        running_logger(clinic.logger_config(db, share_group="loggers")) as logger,
        FakeRoom(clinic, "102") as room,
    ):
        assert logger.filter == "$share/loggers/clinic/s1/room/+/#"
        assert logger.subscribed.wait(10)
        room.send_mix(30)
        room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.inserted >= 30, timeout=30)
        assert db_seqs(db) == {"102": list(range(1, 31))}


def test_tiny_queue_blocks_the_network_thread_and_drops_nothing(
    clinic: Clinic, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    with (
        running_logger(clinic.logger_config(db, queue_max=1, batch_max=1)) as logger,
        FakeRoom(clinic, "101") as room,
    ):
        assert logger.subscribed.wait(10)
        room.send_mix(300)
        room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.inserted >= 300, timeout=60)
        assert db_seqs(db) == {"101": list(range(1, 301))}


def test_retention_runs_in_the_logger(clinic: Clinic, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    db = tmp_path / "log.db"
    cfg = clinic.logger_config(db, retention_days=30, retention_interval_s=0.05, retention_batch=7)
    with running_logger(cfg) as logger, FakeRoom(clinic, "102") as room:
        assert logger.subscribed.wait(10)
        old = datetime.now(UTC) - timedelta(days=31)
        for _ in range(40):
            seq = room.next_seq()
            msg = vitals(clinic.site, "102", seq).model_copy(update={"ts": old})
            room.send("vitals", msg)
        room.send_mix(5)
        room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.inserted >= 45, timeout=30)
        poll(lambda: db_count(db, "SELECT COUNT(*) FROM vitals") == 5, 30, "old vitals deleted")
        assert db_seqs(db) == {"102": list(range(41, 46))}


def test_config_file_and_bad_config(tmp_path: Path) -> None:
    from broker.logger.config import ConfigError

    path = tmp_path / "logger.toml"
    path.write_text('[logger]\nsite = "s1"\ndb = "x.db"\nretention_days = 30\n')
    cfg = LoggerConfig.load(path, {"broker": "mqtt://127.0.0.1:1"})
    assert cfg.retention_days == 30 and cfg.broker == "mqtt://127.0.0.1:1"
    assert cfg.session_expiry_s >= 86400
    path.write_text('site = "s1"\ndb = "x.db"\nsession_expiry_s = 60\n')
    with pytest.raises(ConfigError, match=r"logger.toml: session_expiry_s"):
        LoggerConfig.load(path, {})
    assert messages.SCHEMA_VERSION == 2 and 1 in messages.SUPPORTED_VERSIONS
