"""Redundant loggers on PostgreSQL (issue 16): two logger processes, each with its own
certificate, persistent session and status topic, write the same messages into one database.
SIGKILL either at any moment, crash-restart PostgreSQL: every (site, room, epoch, seq) is stored
exactly once, the survivor keeps ingesting, and the board shows both loggers.

Real parts: the clinic's TLS Mosquitto from the generated config, logger processes
(`roomctl logger --db postgresql://...`), a throw-away PostgreSQL 15 cluster of its own (it is
crash-restarted), rooms publishing from threads of this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.logger.store import open_store
from contract import topics
from tests.support.clinic import Clinic, open_session
from tests.support.clinic_rooms import FakeRoom, poll
from tests.support.logger_process import LoggerProcess, wait_payload
from tests.support.postgres import PgDatabases, pg_count, pg_seqs
from tools.postgres.cluster import PostgresCluster

pytestmark = [pytest.mark.broker]
ROOMS = ("101", "102", "103")
NOT_AUTHORIZED = 0x87


@pytest.fixture
def two_logger_clinic(tmp_path: Path) -> Iterator[Clinic]:
    with Clinic(
        tmp_path / "clinic", rooms=ROOMS, staff=("alice", "bob"), loggers=("a", "b")
    ) as clinic:
        yield clinic


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: the test crash-restarts it."""
    with PostgresCluster() as cluster:
        yield cluster


def test_each_named_logger_writes_only_its_own_status(two_logger_clinic: Clinic) -> None:
    site = two_logger_clinic.site
    a = open_session(two_logger_clinic.endpoint("logger-a"))
    try:
        assert not a.publish(topics.logger_status(site, "a"), b"online", retain=True).is_failure
        assert a.publish(topics.logger_status(site, "b"), b"offline").value == NOT_AUTHORIZED
        assert a.publish(topics.logger_status(site), b"offline").value == NOT_AUTHORIZED
    finally:
        a.stop()


@pytest.mark.slow
def test_two_loggers_survive_sigkill_and_a_postgres_crash_with_every_row_once(
    two_logger_clinic: Clinic, own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    clinic = two_logger_clinic
    url = PgDatabases(own_cluster).fresh()
    site = clinic.site
    status = {n: topics.logger_status(site, n) for n in ("a", "b")}
    loggers = {
        n: LoggerProcess(clinic, url, tmp_path / f"logger-{n}.out", cn=f"logger-{n}")
        for n in ("a", "b")
    }
    watcher = open_session(clinic.endpoint("staff-alice"))
    watcher.subscribe(topics.logger_status_filter(site))
    board = SiteState(site)
    feed = BoardFeed(clinic.endpoint("staff-bob"), board).start()  # its own session
    rooms = [FakeRoom(clinic, r) for r in ROOMS]

    def burst() -> None:
        """Every room publishes 200 more messages (not waiting for anything)."""
        for r in rooms:
            r.send_mix(200)

    def all_stored(what: str) -> None:
        total = sum(r.seq for r in rooms)
        try:
            poll(lambda: pg_count(url) >= total, 90, f"all {total} rows: {what}")
        except TimeoutError as exc:  # say how far it got and what the loggers said
            tails = {n: lg.log.read_text(errors="replace")[-1500:] for n, lg in loggers.items()}
            raise AssertionError(f"{exc}: {pg_count(url)} stored; loggers: {tails}") from exc

    try:
        for n, logger in loggers.items():
            logger.start()
            wait_payload(watcher, status[n], b"online", 1)
        poll(lambda: board.logger_statuses() == {"a": "online", "b": "online"}, 20, "board: both")
        burst()
        all_stored("both loggers")
        for dead, alive in (("a", "b"), ("b", "a")):
            burst()
            loggers[dead].kill()  # while both are writing that burst
            wait_payload(watcher, status[dead], b"offline", 1)  # its Will
            poll(lambda d=dead: board.logger_statuses()[d] == "offline", 20, "board: one down")
            assert board.logger_status == "offline" and board.logger_statuses()[alive] == "online"
            burst()  # published while one logger is dead: the survivor stores all of it
            all_stored(f"{alive} alone")
            loggers[dead].start()
            wait_payload(watcher, status[dead], b"online", 2)
        burst()
        own_cluster.restart(mode="immediate")  # a crash while both write: connections cut
        burst()
        all_stored("after PostgreSQL came back")
        for r in rooms:
            r.wait_all_acked()
        assert pg_seqs(url) == {r.room: list(range(1, r.seq + 1)) for r in rooms}
        vitals = pg_count(url, "SELECT COUNT(*) FROM messages WHERE kind = 'vitals'")
        assert pg_count(url, "SELECT COUNT(*) FROM vitals") == vitals
        events = pg_count(url, "SELECT COUNT(*) FROM messages WHERE kind = 'events'")
        assert pg_count(url, "SELECT COUNT(*) FROM events") == events > 0
        assert pg_count(url, "SELECT COUNT(*) FROM quarantine") == 0
        # the board's history reads the same database
        history = open_store(url, readonly=True)
        try:
            assert [r["room"] for r in history.rooms()] == list(ROOMS)
            assert history.counts(site).duplicate_seqs == 0
            assert len(history.vitals(site, "101", "2000-01-01")) > 0
        finally:
            history.close()
        for logger in loggers.values():
            assert logger.terminate() == 0
        poll(lambda: board.logger_statuses() == {"a": "offline", "b": "offline"}, 20, "both off")
    finally:
        for r in rooms:
            r.stop()
        for logger in loggers.values():
            logger.terminate()
        feed.stop()
        watcher.stop()
