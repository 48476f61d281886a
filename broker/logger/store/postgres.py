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

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from broker.logger.ingest import Classified
from broker.logger.store.base import (
    EXPORT_KINDS,
    MAX_HISTORY_ROWS,
    MAX_VITAL_POINTS,
    PAGE_COLUMNS,
    ROOM_COLUMNS,
    VITAL_COLUMNS,
    BatchStats,
    LedgerCounts,
    QuarantineLimits,
    Row,
    StoreError,
)
from broker.logger.store.postgres_batch import STAGING, PgBatchWriter
from broker.logger.store.postgres_retention import PgRetention
from broker.logger.store.postgres_schema import connect, current_version, grant, migrate
from contract import topics

Conn = psycopg.Connection[Any]

_TIME_COLUMN = {
    "vitals": "ts",
    "events": "ts",
    "calls": "placed_at",
    "sessions": "started_at",
    "quarantine": "received_at",
}
_EPOCH_RANK = (
    "(SELECT e.id FROM epochs e WHERE e.site = {t}.site AND e.room = {t}.room "
    "AND e.epoch = {t}.epoch)"
)
_ORDER = {
    "vitals": f"site, room, {_EPOCH_RANK}, seq",
    "events": f"site, room, {_EPOCH_RANK}, seq",
    "calls": "placed_at, site, room, call_id",
    "sessions": "started_at, site, room, session_id",
    "quarantine": "id",
}
_INTERNAL = {"id"}


def safe_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _check_kind(kind: str) -> str:
    if kind not in EXPORT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EXPORT_KINDS)}")
    return kind


def _export_query(
    kind: str, site: str, room: str | None, since: str | None, until: str | None
) -> tuple[str, list[Any]]:
    _check_kind(kind)
    where: list[str] = []
    args: list[Any] = []
    if kind == "quarantine":
        prefix = topics.room_prefix(site, room) + "/" if room else topics.site_prefix(site) + "/"
        where.append("starts_with(topic, %s)")
        args.append(prefix)
    else:
        where.append("site = %s")
        args.append(site)
        if room:
            where.append("room = %s")
            args.append(room)
    column = _TIME_COLUMN[kind]
    if since:
        where.append(f"{column} >= %s")
        args.append(since)
    if until:
        where.append(f"{column} < %s")
        args.append(until)
    order = _ORDER[kind].replace("{t}", kind)
    return f"SELECT * FROM {kind} WHERE {' AND '.join(where)} ORDER BY {order}", args


class PostgresLogStore:
    """`LogStore` on a PostgreSQL database (`postgresql://user@host:port/db`)."""

    def __init__(
        self, url: str, readonly: bool = False, quarantine: QuarantineLimits | None = None
    ):
        self.url = url
        self.name = safe_url(url)
        self.readonly = readonly
        self.conn: Conn | None = None
        self._lock = threading.RLock()
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

    # -- history --------------------------------------------------------------------------
    def session(self, site: str, room: str, session_id: str) -> Row | None:
        rows = self._rows(
            "SELECT * FROM sessions WHERE site = %s AND room = %s AND session_id = %s",
            (site, room, session_id),
        )
        return rows[0] if rows else None

    def sessions(self, site: str, room: str, limit: int = 20) -> list[Row]:
        return self._rows(
            "SELECT * FROM sessions WHERE site = %s AND room = %s "
            "ORDER BY started_at DESC LIMIT %s",
            (site, room, limit),
        )

    def vitals(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            f"SELECT epoch, seq, ts, {', '.join(VITAL_COLUMNS)} FROM vitals "
            "WHERE site = %s AND room = %s AND ts >= %s"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND ts < %s"
            args.append(until)
        sql += " ORDER BY ts, seq LIMIT %s"
        args.append(MAX_VITAL_POINTS)
        return self._rows(sql, args)

    def events(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            "SELECT epoch, seq, ts, kind, call_id, priority, phase, from_phase, session_id, by, "
            "reason, detail FROM events WHERE site = %s AND room = %s AND ts >= %s"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND ts < %s"
            args.append(until)
        sql += " ORDER BY ts, seq LIMIT %s"
        args.append(MAX_HISTORY_ROWS)
        rows = self._rows(sql, args)
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows

    def pages(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            f"SELECT {', '.join(PAGE_COLUMNS)} FROM pages "
            "WHERE site = %s AND room = %s AND at >= %s"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND at < %s"
            args.append(until)
        sql += " ORDER BY at, id LIMIT %s"
        args.append(MAX_HISTORY_ROWS)
        rows = self._rows(sql, args)
        for row in rows:
            row["ok"] = bool(row["ok"])
        return rows

    def calls(self, site: str, since: str | None = None, until: str | None = None) -> list[Row]:
        sql = (
            "SELECT room, call_id, priority, status, placed_at, claimed_at, claimed_by, "
            "escalated_at, cancelled_at, cancelled_by, response_s, resolved_s FROM calls "
            "WHERE site = %s"
        )
        args: list[Any] = [site]
        if since is not None:
            sql += " AND placed_at >= %s"
            args.append(since)
        if until is not None:
            sql += " AND placed_at < %s"
            args.append(until)
        sql += " ORDER BY placed_at DESC LIMIT %s"
        args.append(MAX_HISTORY_ROWS)
        return self._rows(sql, args)

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
        sql, args = _export_query(kind, site, room, since, until)
        with self._reading() as ready:
            if ready is None:
                return
        with self._errors(), psycopg.connect(self.url, connect_timeout=10) as conn:
            conn.read_only = True
            with conn.cursor(name="roomctl_export", row_factory=dict_row) as cur:
                cur.itersize = 2000
                cur.execute(sql, args)
                for row in cur:
                    yield {n: v for n, v in row.items() if n not in _INTERNAL}

    def export_columns(self, kind: str) -> list[str]:
        table = _check_kind(kind)
        with self._reading() as conn:
            if conn is None:
                return []
            cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            names = [d.name for d in cur.description or ()]
        return [n for n in names if n not in _INTERNAL]

    def rooms(self) -> list[Row]:
        return self._rows(
            f"SELECT {', '.join(ROOM_COLUMNS)} FROM room_state ORDER BY site, room", ()
        )

    def quarantine_usage(self) -> list[Row]:
        return self._rows(
            "SELECT site, room, row_count AS rows, byte_count AS bytes, dropped "
            "FROM quarantine_buckets ORDER BY site, room",
            (),
        )

    # -- audits ---------------------------------------------------------------------------
    def stored_seqs(self, site: str, room: str, epoch: str | None = None) -> set[int]:
        if epoch is None:
            rows = self._rows(
                "SELECT seq FROM messages WHERE site = %s AND room = %s", (site, room)
            )
        else:
            rows = self._rows(
                "SELECT seq FROM messages WHERE site = %s AND room = %s AND epoch = %s",
                (site, room, epoch),
            )
        return {int(r["seq"]) for r in rows}

    def counts(self, site: str) -> LedgerCounts:
        one = self._count
        return LedgerCounts(
            vitals=one("SELECT COUNT(*) FROM vitals WHERE site = %s", site),
            events=one("SELECT COUNT(*) FROM events WHERE site = %s", site),
            alerts_raised=one(
                "SELECT COUNT(*) FROM events WHERE site = %s AND kind = 'alert_raised'", site
            ),
            duplicate_seqs=one(
                "SELECT COUNT(*) - COUNT(DISTINCT (site, room, epoch, seq)) FROM messages "
                "WHERE site = %s",
                site,
            ),
            quarantined=one("SELECT COUNT(*) FROM quarantine"),
            quarantine_dropped=one(
                "SELECT COALESCE(SUM(dropped), 0) FROM quarantine_buckets WHERE site = %s", site
            ),
        )

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
