"""Retained messages on topics the contract does not retain (issue 13), through a real broker:
the logger quarantines them, the board ignores them and counts them."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.logger.ingest import RETAINED_ON_NON_RETAINED
from broker.logger.service import Logger
from contract import messages
from tests.support.clinic import Clinic
from tests.support.clinic_rooms import FakeRoom, db_seqs, event, vitals

pytestmark = pytest.mark.broker


def _reasons(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(str(t), str(r)) for t, r in conn.execute("SELECT topic, reason FROM quarantine")]
    finally:
        conn.close()


def test_logger_quarantines_retained_events_and_vitals(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    site = clinic.site
    with FakeRoom(clinic, "101") as room:
        # left on the broker before the logger ever subscribed (sent to it because it subscribes)
        room.send("events", event(site, "101", 1, messages.EventKind.SCENE_CHANGED), retain=True)
        room.wait_all_acked()
        logger = Logger(clinic.logger_config(db)).start()
        try:
            assert logger.subscribed.wait(10)
            # published while the logger is subscribed: only retain-as-published shows the flag
            room.send("vitals", vitals(site, "101", 2), retain=True)
            room.send("vitals", vitals(site, "101", 3))  # an ordinary one: stored
            room.wait_all_acked()
            assert logger.wait_committed(lambda t: t.quarantined >= 2 and t.inserted >= 1, 30)
        finally:
            logger.stop()
    reasons = sorted(_reasons(db))
    assert [r for _, r in reasons] == [
        f"{RETAINED_ON_NON_RETAINED} (events)",
        f"{RETAINED_ON_NON_RETAINED} (vitals)",
    ]
    assert db_seqs(db) == {"101": [3]}


def test_board_ignores_retained_vitals_and_events(clinic: Clinic) -> None:
    site = clinic.site
    board = SiteState(site)
    seen = threading.Condition()

    def listener(room: str | None) -> None:
        with seen:
            seen.notify_all()

    with FakeRoom(clinic, "101") as room:
        room.send("vitals", vitals(site, "101", 1, spo2=80.0), retain=True)  # stale on connect
        room.wait_all_acked()
        feed = BoardFeed(clinic.endpoint("staff-alice"), board, listener=listener).start()
        try:
            assert feed.wait_subscribed(10)
            stale = event(site, "101", 2, messages.EventKind.SCENE_CHANGED)
            room.send("events", stale, retain=True)
            room.send("vitals", vitals(site, "101", 3, spo2=97.0))  # live: shown
            room.wait_all_acked()

            def shown() -> bool:
                live = board.rooms.get("101")
                return live is not None and live.vitals is not None and live.vitals.seq == 3

            with seen:
                assert seen.wait_for(shown, 10)
        finally:
            feed.stop()
    live = board.rooms["101"]
    assert [v.seq for _, v in live.vitals_ring] == [3]
    assert list(live.events) == []
    assert board.retained_ignored == 2


def test_classify_refuses_the_retain_flag_only_where_the_contract_does_not_retain() -> None:
    from broker.logger.ingest import Accepted, Rejected, classify
    from contract import topics

    cmd = b'{"phase": "idle", "by": "alice", "issued_at": "2026-01-01T08:00:00.000Z"}'
    got = classify(topics.cmd("s1", "101", "phase", "board"), cmd, "s1", 65536, retain=True)
    assert isinstance(got, Rejected) and got.reason == f"{RETAINED_ON_NON_RETAINED} (cmd/phase)"
    state = messages.StateMessage(
        site="s1", room="101", epoch="0000000000000001", seq=1, ts=vitals("s1", "101", 1).ts,
        clock_synced=True, phase=messages.Phase.IDLE, since=vitals("s1", "101", 1).ts,
    )  # fmt: skip
    payload = state.model_dump_json().encode()
    assert isinstance(classify(topics.state("s1", "101"), payload, "s1", 65536, True), Accepted)
