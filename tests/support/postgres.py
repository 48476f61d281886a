"""A real PostgreSQL 15 for the tests: one throw-away cluster per test session
(`tools.postgres.cluster`, run as an unprivileged user when the tests run as root), and a fresh
database per test, copied from a template the logger's migrations created once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from broker.logger.store.postgres import PostgresLogStore
from tools.postgres.cluster import PostgresCluster

TEMPLATE = "roomctl_template"
_numbers = itertools.count(1)


class PgDatabases:
    """Creates and drops databases on the session's cluster."""

    def __init__(self, cluster: PostgresCluster):
        self.cluster = cluster
        PostgresLogStore(self._create(TEMPLATE)).close()  # migrated once

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.cluster.url(), autocommit=True) as conn:
            conn.execute(sql.encode())

    def _create(self, name: str, template: str = "template0") -> str:
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.cluster.url(name)

    def fresh(self, migrated: bool = True) -> str:
        """The URL of a new database: with the logger's schema, or empty."""
        name = f"t{next(_numbers)}"
        return self._create(name, TEMPLATE if migrated else "template0")

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole session (fsync off: it is thrown away)."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_databases(pg_cluster: PostgresCluster) -> PgDatabases:
    return PgDatabases(pg_cluster)


@pytest.fixture
def pg_url(pg_databases: PgDatabases) -> Iterator[str]:
    """A fresh, migrated database of the session's cluster, dropped after the test."""
    url = pg_databases.fresh()
    try:
        yield url
    finally:
        pg_databases.drop(url)


def pg_count(url: str, sql: str = "SELECT COUNT(*) FROM messages") -> int:
    """One number from the database (0 while it cannot answer: server restarting)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            got = conn.execute(sql.encode()).fetchone()
    except psycopg.Error:
        return 0
    return int(got[0]) if got else 0


def pg_seqs(url: str) -> dict[str, list[int]]:
    """Every stored seq per room (the messages ledger)."""
    out: dict[str, list[int]] = {}
    with psycopg.connect(url) as conn:
        for room, seq in conn.execute("SELECT room, seq FROM messages ORDER BY room, seq"):
            out.setdefault(room, []).append(seq)
    return out
