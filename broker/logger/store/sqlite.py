"""The SQLite `LogStore`: one file in WAL mode (schema `sqlite_schema.py`).

How this works: a writable store opens (creating and migrating) the file once and owns that
connection; the batch writer (`sqlite_batch.py`) and retention run on it, from one thread.
A read-only store (the board, exports) opens a fresh `mode=ro` connection per question and
closes it again, so it can be asked from any thread and never creates the file: while the
logger has not made the database yet, every question has an empty answer. Every
`sqlite3.Error` leaves as `StoreError`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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
from broker.logger.store.sqlite_batch import BatchWriter
from broker.logger.store.sqlite_retention import Retention
from broker.logger.store.sqlite_schema import open_db
from contract import topics

T = TypeVar("T")

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
    # a room's epochs in the order the logger first saw them, then seq
    "vitals": f"site, room, {_EPOCH_RANK}, seq",
    "events": f"site, room, {_EPOCH_RANK}, seq",
    "calls": "placed_at, site, room, call_id",
    "sessions": "started_at, site, room, session_id",
    "quarantine": "id",
}
_INTERNAL = {"id"}  # surrogate keys: not part of any exported row


def _dicts(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


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
        where.append("substr(topic, 1, ?) = ?")
        args += [len(prefix), prefix]
    else:
        where.append("site = ?")
        args.append(site)
        if room:
            where.append("room = ?")
            args.append(room)
    column = _TIME_COLUMN[kind]
    if since:
        where.append(f"{column} >= ?")
        args.append(since)
    if until:
        where.append(f"{column} < ?")
        args.append(until)
    order = _ORDER[kind].replace("{t}", kind)
    sql = f"SELECT * FROM {kind} WHERE {' AND '.join(where)} ORDER BY {order}"
    return sql, args


class SqliteLogStore:
    """`LogStore` on one SQLite file. `synchronous`: see `sqlite_schema.open_db`."""

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
        self._retention: Retention | None = None
        self._vitals_retention: Retention | None = None
        if not readonly:
            with self._errors():
                self.conn = open_db(self.path, synchronous=synchronous)
            self._writer = BatchWriter(self.conn, quarantine or QuarantineLimits())
            self._retention = Retention(self.conn)
            self._vitals_retention = Retention(self.conn)

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

    def _scalar(self, sql: str, *args: Any, default: T, cast: Callable[[Any], T]) -> T:
        with self._reading() as conn:
            if conn is None:
                return default
            return cast(conn.execute(sql, args).fetchone()[0])

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
            done = self._vitals_retention.run(cutoff, "", batch, max_batches, tables=("vitals",))
        return done["vitals"]

    def delete_expired(
        self, clinical_cutoff: str, quarantine_cutoff: str, batch: int = 500, max_batches: int = 20
    ) -> dict[str, int]:
        self._write()
        assert self._retention is not None
        with self._errors():
            return self._retention.run(clinical_cutoff, quarantine_cutoff, batch, max_batches)

    # -- history --------------------------------------------------------------------------
    def session(self, site: str, room: str, session_id: str) -> Row | None:
        rows = self._rows(
            "SELECT * FROM sessions WHERE site = ? AND room = ? AND session_id = ?",
            (site, room, session_id),
        )
        return rows[0] if rows else None

    def sessions(self, site: str, room: str, limit: int = 20) -> list[Row]:
        return self._rows(
            "SELECT * FROM sessions WHERE site = ? AND room = ? ORDER BY started_at DESC LIMIT ?",
            (site, room, limit),
        )

    def vitals(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            f"SELECT epoch, seq, ts, {', '.join(VITAL_COLUMNS)} FROM vitals "
            "WHERE site = ? AND room = ? AND ts >= ?"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND ts < ?"
            args.append(until)
        sql += " ORDER BY ts, seq LIMIT ?"
        args.append(MAX_VITAL_POINTS)
        return self._rows(sql, args)

    def events(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            "SELECT epoch, seq, ts, kind, call_id, priority, phase, from_phase, session_id, by, "
            "reason, detail FROM events WHERE site = ? AND room = ? AND ts >= ?"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND ts < ?"
            args.append(until)
        sql += " ORDER BY ts, seq LIMIT ?"
        args.append(MAX_HISTORY_ROWS)
        rows = self._rows(sql, args)
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows

    def pages(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        sql = (
            f"SELECT {', '.join(PAGE_COLUMNS)} FROM pages "
            "WHERE site = ? AND room = ? AND at >= ?"
        )
        args: list[Any] = [site, room, since]
        if until:
            sql += " AND at < ?"
            args.append(until)
        sql += " ORDER BY at, id LIMIT ?"
        args.append(MAX_HISTORY_ROWS)
        rows = self._rows(sql, args)
        for row in rows:
            row["ok"] = bool(row["ok"])
        return rows

    def calls(self, site: str, since: str | None = None, until: str | None = None) -> list[Row]:
        sql = (
            "SELECT room, call_id, priority, status, placed_at, claimed_at, claimed_by, "
            "escalated_at, cancelled_at, cancelled_by, response_s, resolved_s FROM calls "
            "WHERE site = ?"
        )
        args: list[Any] = [site]
        if since is not None:
            sql += " AND placed_at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND placed_at < ?"
            args.append(until)
        sql += " ORDER BY placed_at DESC LIMIT ?"
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
        sql, args = _export_query(kind, site, room, since, until)
        with self._reading() as conn:
            if conn is None:
                return
            cur = conn.execute(sql, args)
            names = [d[0] for d in cur.description]
            for row in cur:
                yield {n: v for n, v in zip(names, row, strict=True) if n not in _INTERNAL}

    def export_columns(self, kind: str) -> list[str]:
        table = _check_kind(kind)
        with self._reading() as conn:
            if conn is None:
                return []
            names = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
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
            rows = self._rows("SELECT seq FROM messages WHERE site = ? AND room = ?", (site, room))
        else:
            rows = self._rows(
                "SELECT seq FROM messages WHERE site = ? AND room = ? AND epoch = ?",
                (site, room, epoch),
            )
        return {int(r["seq"]) for r in rows}

    def counts(self, site: str) -> LedgerCounts:
        def one(sql: str, *args: Any) -> int:
            return self._scalar(sql, *args, default=0, cast=int)

        return LedgerCounts(
            vitals=one("SELECT COUNT(*) FROM vitals WHERE site = ?", site),
            events=one("SELECT COUNT(*) FROM events WHERE site = ?", site),
            alerts_raised=one(
                "SELECT COUNT(*) FROM events WHERE site = ? AND kind = 'alert_raised'", site
            ),
            duplicate_seqs=one(
                "SELECT COUNT(*) - COUNT(DISTINCT site || '/' || room || '/' || epoch || '/' "
                "|| seq) FROM messages WHERE site = ?",
                site,
            ),
            quarantined=one("SELECT COUNT(*) FROM quarantine"),
            quarantine_dropped=one(
                "SELECT COALESCE(SUM(dropped), 0) FROM quarantine_buckets WHERE site = ?", site
            ),
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self._writer = None
            self._retention = self._vitals_retention = None
