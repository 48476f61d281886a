"""The store's reads (history, exports, audits): each query once, for both engines.

How this works: `StoreReads` holds the `LogStore` reads that are the same question on either
engine (`session`, `sessions`, `vitals`, `events`, `pages`, `calls`, `report_rows` with its SQL in
`report_sql.py`, `rooms`, `quarantine_usage`, `stored_seqs`, `counts`), written with `?` marks
and the store's `Dialect`. An engine's store inherits them and supplies three things: its
`dialect`, `_rows(sql, args)` (a list of dicts, empty while the database does not exist yet)
and `_count(sql, *args)` (one integer, 0 then).
`export_query` builds the SQL of a streamed export; streaming itself differs per engine and
stays in `sqlite.py`/`postgres.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from broker.logger.store.base import (
    EXPORT_KINDS,
    MAX_HISTORY_ROWS,
    MAX_VITAL_POINTS,
    PAGE_COLUMNS,
    ROOM_COLUMNS,
    VITAL_COLUMNS,
    LedgerCounts,
    Row,
)
from broker.logger.store.dialect import Dialect
from broker.logger.store.report_sql import report_query
from contract import topics

TIME_COLUMN = {
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
INTERNAL = {"id"}  # surrogate keys: not part of any exported row
_EVENT_COLUMNS = (
    "epoch, seq, ts, kind, call_id, priority, phase, from_phase, session_id, by, reason, detail"
)
_CALL_COLUMNS = (
    "room, call_id, priority, status, placed_at, claimed_at, claimed_by, escalated_at, "
    "cancelled_at, cancelled_by, response_s, resolved_s"
)


def check_kind(kind: str) -> str:
    if kind not in EXPORT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EXPORT_KINDS)}")
    return kind


def export_query(
    d: Dialect, kind: str, site: str, room: str | None, since: str | None, until: str | None
) -> tuple[str, list[Any]]:
    """The SQL and values of `LogStore.export_rows`."""
    check_kind(kind)
    where: list[str] = []
    args: list[Any] = []
    if kind == "quarantine":
        prefix = topics.room_prefix(site, room) + "/" if room else topics.site_prefix(site) + "/"
        test, values = d.starts_with("topic", prefix)
        where.append(test)
        args += values
    else:
        where.append("site = ?")
        args.append(site)
        if room:
            where.append("room = ?")
            args.append(room)
    column = TIME_COLUMN[kind]
    if since:
        where.append(f"{column} >= ?")
        args.append(since)
    if until:
        where.append(f"{column} < ?")
        args.append(until)
    order = _ORDER[kind].replace("{t}", kind)
    return d.sql(f"SELECT * FROM {kind} WHERE {' AND '.join(where)} ORDER BY {order}"), args


def _span(sql: str, args: list[Any], column: str, since: str | None, until: str | None) -> str:
    """`sql` narrowed to `column` in [since, until) (a side left open when None), its values
    appended to `args`."""
    if since is not None:
        sql += f" AND {column} >= ?"
        args.append(since)
    if until is not None:
        sql += f" AND {column} < ?"
        args.append(until)
    return sql


class StoreReads:
    """The `LogStore` reads shared by both engines (see the module's docstring)."""

    dialect: Dialect

    def _rows(self, sql: str, args: Iterable[Any]) -> list[Row]:
        raise NotImplementedError

    def _count(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    def _query(self, sql: str, *args: Any) -> list[Row]:
        return self._rows(self.dialect.sql(sql), args)

    # -- history --------------------------------------------------------------------------
    def session(self, site: str, room: str, session_id: str) -> Row | None:
        rows = self._query(
            "SELECT * FROM sessions WHERE site = ? AND room = ? AND session_id = ?",
            site,
            room,
            session_id,
        )
        return rows[0] if rows else None

    def sessions(self, site: str, room: str, limit: int = 20) -> list[Row]:
        return self._query(
            "SELECT * FROM sessions WHERE site = ? AND room = ? ORDER BY started_at DESC LIMIT ?",
            site,
            room,
            limit,
        )

    def vitals(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        args: list[Any] = [site, room]
        sql = _span(
            f"SELECT epoch, seq, ts, {', '.join(VITAL_COLUMNS)} FROM vitals "
            "WHERE site = ? AND room = ?",
            args,
            "ts",
            since,
            until or None,
        )
        return self._query(sql + " ORDER BY ts, seq LIMIT ?", *args, MAX_VITAL_POINTS)

    def events(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        args: list[Any] = [site, room]
        sql = _span(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE site = ? AND room = ?",
            args,
            "ts",
            since,
            until or None,
        )
        rows = self._query(sql + " ORDER BY ts, seq LIMIT ?", *args, MAX_HISTORY_ROWS)
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows

    def pages(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        args: list[Any] = [site, room]
        sql = _span(
            f"SELECT {', '.join(PAGE_COLUMNS)} FROM pages WHERE site = ? AND room = ?",
            args,
            "at",
            since,
            until or None,
        )
        rows = self._query(sql + " ORDER BY at, id LIMIT ?", *args, MAX_HISTORY_ROWS)
        for row in rows:
            row["ok"] = bool(row["ok"])
        return rows

    def calls(self, site: str, since: str | None = None, until: str | None = None) -> list[Row]:
        args: list[Any] = [site]
        sql = _span(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE site = ?",
            args,
            "placed_at",
            since,
            until,
        )
        return self._query(sql + " ORDER BY placed_at DESC LIMIT ?", *args, MAX_HISTORY_ROWS)

    def report_rows(self, kind: str, site: str, since: str, until: str) -> list[Row]:
        sql, args = report_query(kind, self.dialect, site, since, until)
        rows = self._rows(sql, args)
        for row in rows:
            if "detail" in row:
                row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows

    # -- `roomctl log rooms` and audits ---------------------------------------------------
    def rooms(self) -> list[Row]:
        return self._query(f"SELECT {', '.join(ROOM_COLUMNS)} FROM room_state ORDER BY site, room")

    def quarantine_usage(self) -> list[Row]:
        return self._query(
            "SELECT site, room, row_count AS rows, byte_count AS bytes, dropped "
            "FROM quarantine_buckets ORDER BY site, room"
        )

    def stored_seqs(self, site: str, room: str, epoch: str | None = None) -> set[int]:
        sql = "SELECT seq FROM messages WHERE site = ? AND room = ?"
        if epoch is None:
            rows = self._query(sql, site, room)
        else:
            rows = self._query(sql + " AND epoch = ?", site, room, epoch)
        return {int(r["seq"]) for r in rows}

    def counts(self, site: str) -> LedgerCounts:
        d = self.dialect

        def one(sql: str, *args: Any) -> int:
            return self._count(d.sql(sql), *args)

        distinct = d.distinct_keys("site", "room", "epoch", "seq")
        return LedgerCounts(
            vitals=one("SELECT COUNT(*) FROM vitals WHERE site = ?", site),
            events=one("SELECT COUNT(*) FROM events WHERE site = ?", site),
            alerts_raised=one(
                "SELECT COUNT(*) FROM events WHERE site = ? AND kind = 'alert_raised'", site
            ),
            duplicate_seqs=one(
                f"SELECT COUNT(*) - {distinct} FROM messages WHERE site = ?", site
            ),
            quarantined=one("SELECT COUNT(*) FROM quarantine"),
            quarantine_dropped=one(
                "SELECT COALESCE(SUM(dropped), 0) FROM quarantine_buckets WHERE site = ?", site
            ),
        )
