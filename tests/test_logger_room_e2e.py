"""The real room daemon over mutual TLS, the real logger, the generated broker config and ACL:
what a room publishes in a session lands in the right tables, and nothing is quarantined."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.logger.service import Logger
from broker.logger.store import open_store
from contract import topics
from contract.messages import CallMessage
from tests.support.clinic import SITE, Clinic, open_session
from tests.support.clinic_rooms import db_count, poll
from tests.support.mqtt import staff_command
from tests.support.room_process import RunningRoom

pytestmark = pytest.mark.broker

_NO_CALL = CallMessage(
    site=SITE, room="101", epoch="0" * 16, seq=1, ts=datetime.now(UTC), clock_synced=True,
    status="idle",
)  # fmt: skip


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
                topics.cmd(SITE, "101", "phase", "alice"),
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
            topics.cmd(SITE, "101", "claim", "alice"),
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


def test_a_reimaged_room_is_logged_and_shown_at_once(clinic: Clinic, tmp_path: Path) -> None:
    """The room's state folder is lost (re-flashed card): it numbers from 1 again in a new
    epoch. Its new call is stored (not quarantined) and the board's live state shows it."""
    db = tmp_path / "log.db"
    logger = Logger(clinic.logger_config(db)).start()
    board = SiteState(SITE)
    feed = BoardFeed(clinic.endpoint("staff-alice"), board).start()  # the board's own feed
    try:
        assert logger.subscribed.wait(10) and feed.subscribed.wait(10)
        calls = [
            _one_life(clinic, board, db, tmp_path / "first", cycles=3),  # numbers higher
            _one_life(clinic, board, db, tmp_path / "re-imaged", cycles=0),  # an empty folder
        ]
        epochs = rows(db, "SELECT DISTINCT epoch FROM messages WHERE room = '101'")
        assert len(epochs) == 2
        assert db_count(db, "SELECT COUNT(*) FROM quarantine") == 0
        (current,) = rows(db, "SELECT call FROM room_state WHERE room = '101'")[0]
        assert json.loads(str(current))["call_id"] == calls[1]
    finally:
        feed.stop()
        logger.stop()


def _one_life(clinic: Clinic, board: SiteState, db: Path, state_dir: Path, cycles: int) -> str:
    """Run the room on `state_dir`: `cycles` calls placed and cancelled, then one call left
    placed; wait until the board shows it and the logger stored it; return its call id."""
    config = clinic.room_config("101", state_dir)
    room = RunningRoom(config)
    room.thread.start()
    try:
        poll(lambda: room.daemon.link.connected, 30, "room connected")
        for _ in range(cycles):
            for pin in (config.gpio.call_pin, config.gpio.cancel_pin):
                room.press(pin)
                room.release(pin)
        room.press(config.gpio.call_pin)
        room.release(config.gpio.call_pin)
        poll(lambda: room.daemon.core.call.call_id is not None, 10, "call placed")
        call_id = str(room.daemon.core.call.call_id)
        poll(
            lambda: (board.current_call("101") or _NO_CALL).call_id == call_id,
            30,
            f"the board shows call {call_id}",
        )
        poll(
            lambda: db_count(db, f"SELECT COUNT(*) FROM calls WHERE call_id = '{call_id}'") == 1,
            30,
            f"call {call_id} stored",
        )
        return call_id
    finally:
        room.daemon.stop()
        room.thread.join(15)
