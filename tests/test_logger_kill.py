"""SIGKILL the logger process while rooms publish, restart it: every (site, room, seq) once.

The logger runs as `python -m controller.cli logger ...` (a real process, real TLS, the
generated broker config); rooms publish from threads of this process.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from contract import topics
from tests.support.clinic import Clinic, open_session
from tests.support.clinic_rooms import FakeRoom, db_count, db_seqs, poll
from tests.support.logger_process import LoggerProcess, wait_payload

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture
def clinic_rooms() -> tuple[str, ...]:
    """Three rooms for the shared `clinic` fixture (tests/support/clinic_fixtures.py)."""
    return ("101", "102", "103")


def test_sigkill_logger_mid_stream_loses_and_duplicates_nothing(
    clinic: Clinic, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    logger = LoggerProcess(
        clinic,
        db,
        tmp_path / "logger.out",
        client_id="logger-under-test",
        retention_interval_s=None,
    )
    status = topics.logger_status(clinic.site)
    watcher = open_session(clinic.endpoint("staff-alice"))
    watcher.subscribe(status)
    rooms = [FakeRoom(clinic, r) for r in ("101", "102", "103")]
    stop = threading.Event()
    threads = [threading.Thread(target=r.pump, args=(stop, 20_000)) for r in rooms]
    try:
        logger.start()
        wait_payload(watcher, status, b"online", 1)
        for t in threads:
            t.start()
        for round_no in (1, 2):
            floor = db_count(db) + 300
            poll(lambda f=floor: db_count(db) >= f, 60, f"{floor} rows before kill {round_no}")
            logger.kill()
            wait_payload(watcher, status, b"offline", round_no)  # the Will, from the broker
            logger.start()
            wait_payload(watcher, status, b"online", round_no + 1)
        floor = db_count(db) + 300
        poll(lambda: db_count(db) >= floor, 60, "rows after the last restart")
        stop.set()
        for t in threads:
            t.join(60)
        for r in rooms:
            r.wait_all_acked()
        total = sum(r.seq for r in rooms)
        poll(lambda: db_count(db) >= total, 90, f"all {total} rows")
        assert db_seqs(db) == {r.room: list(range(1, r.seq + 1)) for r in rooms}
        kinds = db_count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'vitals'")
        assert db_count(db, "SELECT COUNT(*) FROM vitals") == kinds
        events = db_count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'events'")
        assert db_count(db, "SELECT COUNT(*) FROM events") == events > 0
        assert db_count(db, "SELECT COUNT(*) FROM quarantine") == 0
        assert logger.terminate() == 0
        wait_payload(watcher, status, b"offline", 3)
    finally:
        stop.set()
        for r in rooms:
            r.stop()
        logger.terminate()
        watcher.stop()
