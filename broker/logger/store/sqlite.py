"""The SQLite `LogStore`: one file in WAL mode (schema `sqlite_schema.py`).

How this works: a writable store opens (creating and migrating) the file once and owns that
connection; the batch writer (`sqlite_batch.py`) and retention run on it, from one thread.
The reads are `reads.py`'s, shared with PostgreSQL.
A read-only store (the board, exports) opens a fresh `mode=ro` connection per question and
closes it again, so it can be asked from any thread and never creates the file: while the
logger has not made the database yet, every question has an empty answer. Every
`sqlite3.Error` leaves as `StoreError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.logger.ingest import Classified
from broker.logger.store.base import BatchStats, QuarantineLimits, Row, StoreError
from broker.logger.store.dialect import SQLITE
from broker.logger.store.reads import INTERNAL, StoreReads, check_kind, export_query
from broker.logger.store.sqlite_batch import BatchWriter
from broker.logger.store.sqlite_retention import SqliteRetention
from broker.logger.store.sqlite_schema import open_db


def _dicts(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


class SqliteLogStore(StoreReads):
    """`LogStore` on one SQLite file. `synchronous`: see `sqlite_schema.open_db`."""

    dialect = SQLITE

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        readonly: bool = False,
        quarantine: QuarantineLimits | None = None,
    ):
        self.path = Path(path)
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        self._writer: BatchWriter | None = None
        self._retention: SqliteRetention | None = None
        self._vitals_retention: SqliteRetention | None = None
        if not readonly:
            with self._errors():
                self.conn = open_db(self.path, synchronous=synchronous)
            self._writer = BatchWriter(self.conn, quarantine or QuarantineLimits())
            self._retention = SqliteRetention()
            self._vitals_retention = SqliteRetention()

    # -- plumbing -------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _errors() -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """The connection to read with: the store's own, or a fresh read-only one (None while
        the file does not exist)."""
        with self._errors():
            if self.conn is not None:
                yield self.conn
                return
            if not self.path.exists():
                yield None
                return
            conn = open_db(self.path, readonly=True)
            try:
                yield conn
            finally:
                conn.close()

    def _rows(self, sql: str, args: Iterable[Any]) -> list[Row]:
        with self._reading() as conn:
            return [] if conn is None else _dicts(conn.execute(sql, tuple(args)))

    def _count(self, sql: str, *args: Any) -> int:
        with self._reading() as conn:
            return 0 if conn is None else int(conn.execute(sql, args).fetchone()[0] or 0)

    def _write(self) -> BatchWriter:
        if self._writer is None:
            raise StoreError(f"{self.path} is open read-only")
        return self._writer

    # -- ingest and upkeep ----------------------------------------------------------------
    def write_batch(self, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        writer = self._write()
        with self._errors():
            return writer.write_batch(items)

    def delete_old_vitals(self, cutoff: str, batch: int = 500, max_batches: int = 20) -> int:
        self._write()
        assert self._vitals_retention is not None
        with self._errors():
            done = self._vitals_retention.run(
                self.conn, cutoff, "", batch, max_batches, tables=("vitals",)
            )
        return done["vitals"]

    def delete_expired(
        self, clinical_cutoff: str, quarantine_cutoff: str, batch: int = 500, max_batches: int = 20
    ) -> dict[str, int]:
        self._write()
        assert self._retention is not None
        with self._errors():
            return self._retention.run(
                self.conn, clinical_cutoff, quarantine_cutoff, batch, max_batches
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
        sql, args = export_query(self.dialect, kind, site, room, since, until)
        with self._reading() as conn:
            if conn is None:
                return
            cur = conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            for row in cur:
                yield {n: v for n, v in zip(names, row, strict=True) if n not in INTERNAL}

    def export_columns(self, kind: str) -> list[str]:
        table = check_kind(kind)
        with self._reading() as conn:
            if conn is None:
                return []
            names = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
        return [n for n in names if n not in INTERNAL]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self._writer = None
            self._retention = self._vitals_retention = None
