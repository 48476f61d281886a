"""The real room daemon over mutual TLS, the real logger, the generated broker config and ACL:
what a room publishes in a session lands in the right tables, and nothing is quarantined."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from broker.logger.service import Logger
from broker.logger.store import open_store
from contract import topics
from tests.support.clinic import SITE, Clinic, open_session
from tests.support.clinic_rooms import db_count, poll
from tests.support.mqtt import staff_command
from tests.support.room_process import RunningRoom

pytestmark = pytest.mark.broker


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_room_session_and_call_are_logged(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    logger = Logger(clinic.logger_config(db)).start()
    config = clinic.room_config("101", tmp_path / "room")
    room = RunningRoom(config)
    staff = open_session(clinic.endpoint("staff-alice"))
    try:
        assert logger.subscribed.wait(10)
        room.thread.start()
        poll(
            lambda: db_count(db, "SELECT COUNT(*) FROM events WHERE kind = 'daemon_started'") == 1,
            30,
            "daemon_started stored",
        )
        for phase in ("pre_check", "infusion"):
            staff.publish(
                topics.cmd(SITE, "101", "phase"),
                json.dumps(staff_command(phase=phase, by="alice", session_id="sess-e2e")),
            )
            poll(
                lambda p=phase: (
                    db_count(db, f"SELECT COUNT(*) FROM room_state WHERE phase = '{p}'") == 1
                ),
                30,
                f"phase {phase} stored",
            )
        room.press(config.gpio.call_pin)
        room.release(config.gpio.call_pin)
        poll(lambda: db_count(db, "SELECT COUNT(*) FROM calls") == 1, 30, "call stored")
        (call_id,) = rows(db, "SELECT call_id FROM calls")[0]
        staff.publish(
            topics.cmd(SITE, "101", "claim"),
            json.dumps(staff_command(call_id=call_id, by="alice")),
        )
        poll(
            lambda: (
                db_count(
                    db,
                    "SELECT COUNT(*) FROM calls WHERE claimed_by = 'alice' "
                    "AND response_s IS NOT NULL",
                )
                == 1
            ),
            30,
            "claim stored",
        )
        room.press(config.gpio.cancel_pin)
        room.release(config.gpio.cancel_pin)
        poll(
            lambda: db_count(db, "SELECT COUNT(*) FROM calls WHERE status = 'cancelled'") == 1,
            30,
            "cancel stored",
        )
        session = rows(
            db, "SELECT session_id, pre_check_at IS NOT NULL, infusion_at IS NOT NULL FROM sessions"
        )
        assert session == [("sess-e2e", 1, 1)]
        assert db_count(db, "SELECT COUNT(*) FROM commands WHERE by = 'alice'") == 3
        assert db_count(db, "SELECT COUNT(*) FROM quarantine") == 0, rows(
            db, "SELECT topic, reason FROM quarantine"
        )
        (state,) = open_store(db, readonly=True).rooms()
        assert state["availability"] == "online" and state["phase"] == "infusion"
        assert room.daemon.publisher.refused == 0
    finally:
        room.daemon.stop()
        room.thread.join(15)
        staff.stop()
        logger.stop()
