"""PostgreSQL provisioning as the central role does it (issue 16): the schema's owner migrates
and grants (`roomctl log migrate --grant-logger --grant-board`); the loggers' role writes rows
but changes no table; the board's role only reads. A real throw-away PostgreSQL 15."""

from __future__ import annotations

import psycopg
import pytest

from broker.logger.store import StoreError, open_store
from contract import topics
from controller.cli import main
from tests.support.clinic_rooms import vitals
from tests.support.logger_store import SITE, received
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
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "migrate", "--db", f"{tmp_path}/log.db", "--grant-logger", "x"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
