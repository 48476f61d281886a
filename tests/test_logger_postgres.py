"""PostgreSQL provisioning as the central role does it (issue 16): the schema's owner migrates
and grants (`roomctl log migrate --grant-logger --grant-board`); the loggers' role writes rows
but changes no table; the board's role only reads. A real throw-away PostgreSQL 15."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from broker.logger.store import StoreError, open_store
from contract import topics
from controller.cli import main
from tests.support.clinic_rooms import vitals
from tests.support.logger_store import SITE, mixed_batch, received
from tools.postgres.cluster import PostgresCluster


def test_least_privilege_roles_for_loggers_and_the_board(
    pg_cluster: PostgresCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, logger, board, db = "rc_owner", "rc_logger", "rc_board", "rc_roles"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        for role in (owner, logger, board):
            admin.execute(f"CREATE ROLE {role} LOGIN".encode())
        admin.execute(f"CREATE DATABASE {db} OWNER {owner}".encode())
    try:
        url = {r: pg_cluster.url(db, user=r) for r in (owner, logger, board)}
        argv = ["log", "migrate", "--db", url[owner], "--grant-logger", logger]
        assert main([*argv, "--grant-board", board]) == 0
        assert "schema up to date" in capsys.readouterr().out
        writer = open_store(url[logger])  # migrated already: no DDL needed
        stats = writer.write_batch([received(topics.vitals(SITE, "101"), vitals(SITE, "101", 1))])
        assert stats.inserted == 1
        assert writer.delete_expired("2000-01-01T00:00:00.000Z", "2000-01-01T00:00:00.000Z")
        writer.close()
        reader = open_store(url[board], readonly=True)
        assert reader.stored_seqs(SITE, "101") == {1}
        reader.close()
        with (
            psycopg.connect(url[board]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("DELETE FROM vitals")
        with (
            psycopg.connect(url[logger]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("DROP TABLE vitals")
        board_writer = open_store(url[board])  # a writable store on the board's role
        with pytest.raises(StoreError, match="permission denied"):
            board_writer.write_batch([received(topics.vitals(SITE, "101"), vitals(SITE, "101", 2))])
        board_writer.close()
    finally:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)".encode())
            for role in (owner, logger, board):
                admin.execute(f"DROP ROLE IF EXISTS {role}".encode())


def test_log_migrate_refuses_grants_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "migrate", "--db", f"{tmp_path}/log.db", "--grant-logger", "x"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_exports_and_room_lists_are_the_same_bytes_from_both_engines(
    pg_url: str, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same messages into SQLite and PostgreSQL: `roomctl log export` and `log rooms`
    print the same text, for every kind."""
    items = mixed_batch()
    sqlite_db = tmp_path / "log.db"
    for where in (sqlite_db, pg_url):
        store = open_store(where)
        store.write_batch(items)
        store.close()
    for kind in ("vitals", "events", "calls", "sessions", "quarantine"):
        got = []
        for where in (str(sqlite_db), pg_url):
            argv = ["log", "export", "--db", where, "--site", SITE, "--kind", kind]
            assert main([*argv, "--format", fmt]) == 0
            got.append(capsys.readouterr().out)
        assert got[0] == got[1] and got[0].count("\n") > 1, kind
    got = []
    for where in (str(sqlite_db), pg_url):
        assert main(["log", "rooms", "--db", where, "--json"]) == 0
        got.append(capsys.readouterr().out)
    assert got[0] == got[1] and '"101"' in got[0]


def test_a_logger_commits_durably_on_a_server_whose_default_is_asynchronous(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The logger acks the broker after COMMIT: `synchronous_commit = off` on the server would
    let a server crash lose acked rows, so the logger's own sessions turn it back on."""
    db = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {db} SET synchronous_commit = off".encode())
    with psycopg.connect(pg_url) as plain:
        assert plain.execute("SHOW synchronous_commit").fetchone() == ("off",)
    caplog.set_level("WARNING", logger="roomctl.logger")
    store = open_store(pg_url)
    try:
        store.write_batch([received(topics.vitals(SITE, "101"), vitals(SITE, "101", 2))])
        conn = store.conn  # type: ignore[attr-defined]
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        store.close()
    assert "synchronous_commit is off" in caplog.text
    reader = open_store(pg_url, readonly=True)  # a reader leaves the session as it is
    try:
        assert reader.counts(SITE).vitals == 1
    finally:
        reader.close()
