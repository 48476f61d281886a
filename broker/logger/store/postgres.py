"""The PostgreSQL `LogStore`: the same tables and answers as the SQLite store, for a clinic group.

How this works: a writable store (a logger) connects, migrates (`postgres_schema.py`) and owns
one connection, used from the logger's writer thread; the batch writer (`postgres_batch.py`)
and retention (`postgres_retention.py`) run on it. When the server goes away (restart,
failover, network), the failing call raises `StoreError` (the logger retries the batch and
acks nothing) and the next call connects again. A read-only store (the board, exports) never
creates or migrates anything: it keeps one autocommit connection behind a lock for questions
from any thread (reconnecting the same way), opens its own connection for a streamed export,
and answers empty while the logger has not created the schema yet. Every `psycopg.Error`
leaves as `StoreError`; the password of the URL never appears in a message.

No connection pool: a logger writes on one connection from one thread, and the board's reads
are short; `psycopg-pool` would add a dependency and threads for no gain at this size.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from broker.logger.ingest import Classified
from broker.logger.store.base import BatchStats, QuarantineLimits, Row, StoreError
from broker.logger.store.dialect import POSTGRES
from broker.logger.store.postgres_batch import STAGING, PgBatchWriter
from broker.logger.store.postgres_retention import PgRetention
from broker.logger.store.postgres_schema import (
    connect,
    current_version,
    durable_commits,
    grant,
    migrate,
)
from broker.logger.store.reads import INTERNAL, StoreReads, check_kind, export_query

log = logging.getLogger("roomctl.logger")

Conn = psycopg.Connection[Any]


def safe_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class PostgresLogStore(StoreReads):
    """`LogStore` on a PostgreSQL database (`postgresql://user@host:port/db`)."""

    dialect = POSTGRES

    def __init__(
        self, url: str, readonly: bool = False, quarantine: QuarantineLimits | None = None
    ):
        self.url = url
        self.name = safe_url(url)
        self.readonly = readonly
        self.conn: Conn | None = None
        self._lock = threading.RLock()
        self._warned_async = False
        self._ready = False  # the schema exists (a read-only store checks until it does)
        self._writer: PgBatchWriter | None = None
        self._retention: PgRetention | None = None
        self._vitals_retention: PgRetention | None = None
        if not readonly:
            self._writer = PgBatchWriter(quarantine or QuarantineLimits())
            self._retention = PgRetention()
            self._vitals_retention = PgRetention()
            with self._errors():
                self._connection()

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            if self.conn is not None and (self.conn.broken or self.conn.closed):
                self.conn = None  # connect again on the next call
            detail = str(exc).strip().replace(self.url, self.name) or type(exc).__name__
            raise StoreError(f"{self.name}: {detail}") from exc

    def _connection(self) -> Conn:
        """The open connection, connected (and, for a writer, migrated) again if it broke."""
        if self.conn is not None and not (self.conn.broken or self.conn.closed):
            return self.conn
        conn = connect(self.url)
        try:
            if not self.readonly:
                if durable_commits(conn) and not self._warned_async:
                    self._warned_async = True
                    log.warning(
                        "%s: the server's synchronous_commit is off; this logger's sessions "
                        "turn it on (it acks the broker after COMMIT)",
                        self.name,
                    )
                migrate(conn)
                for sql in STAGING:
                    conn.execute(sql)
                self._ready = True
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    @contextmanager
    def _reading(self) -> Iterator[Conn | None]:
        """The connection to read with, None while the schema does not exist yet."""
        with self._lock, self._errors():
            conn = self._connection()
            if not self._ready:
                self._ready = current_version(conn) > 0
                if not self._ready:
                    yield None
                    return
            yield conn

    def _rows(self, sql: str, args: Iterable[Any]) -> list[Row]:
        with self._reading() as conn:
            if conn is None:
                return []
            with conn.cursor(row_factory=dict_row) as cur:
                return list(cur.execute(sql, tuple(args)).fetchall())

    def _count(self, sql: str, *args: Any) -> int:
        with self._reading() as conn:
            if conn is None:
                return 0
            got = conn.execute(sql, args).fetchone()
            return int(got[0] or 0) if got else 0

    def _write(self) -> PgBatchWriter:
        if self._writer is None:
            raise StoreError(f"{self.name} is open read-only")
        return self._writer

    # -- ingest and upkeep ----------------------------------------------------------------
    def write_batch(self, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        writer = self._write()
        with self._errors():
            return writer.write_batch(self._connection(), items)

    def delete_old_vitals(self, cutoff: str, batch: int = 500, max_batches: int = 20) -> int:
        self._write()
        assert self._vitals_retention is not None
        with self._errors():
            done = self._vitals_retention.run(
                self._connection(), cutoff, "", batch, max_batches, tables=("vitals",)
            )
        return done["vitals"]

    def delete_expired(
        self, clinical_cutoff: str, quarantine_cutoff: str, batch: int = 500, max_batches: int = 20
    ) -> dict[str, int]:
        self._write()
        assert self._retention is not None
        with self._errors():
            return self._retention.run(
                self._connection(), clinical_cutoff, quarantine_cutoff, batch, max_batches
            )

    # -- exports --------------------------------------------------------------------------
    def export_rows(
        self,
        kind: str,
        site: str,
        room: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[Row]:
        """Streamed through a server-side cursor on a connection of its own."""
        sql, args = export_query(self.dialect, kind, site, room, since, until)
        with self._reading() as ready:
            if ready is None:
                return
        with self._errors(), psycopg.connect(self.url, connect_timeout=10) as conn:
            conn.read_only = True
            with conn.cursor(name="roomctl_export", row_factory=dict_row) as cur:
                cur.itersize = 2000
                cur.execute(sql, args)
                for row in cur:
                    yield {n: v for n, v in row.items() if n not in INTERNAL}

    def export_columns(self, kind: str) -> list[str]:
        table = check_kind(kind)
        with self._reading() as conn:
            if conn is None:
                return []
            cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            names = [d.name for d in cur.description or ()]
        return [n for n in names if n not in INTERNAL]

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            self._writer = None
            self._retention = self._vitals_retention = None


def grant_roles(url: str, logger_role: str | None, board_role: str | None) -> None:
    """`postgres_schema.grant` on the database at `url` (as the schema's owner)."""
    try:
        with connect(url) as conn:
            grant(conn, logger_role, board_role)
    except psycopg.Error as exc:
        raise StoreError(f"{safe_url(url)}: {str(exc).strip()}") from exc
