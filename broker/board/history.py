"""Read-only queries of the logger's database (schema: `broker/logdb_schema.py`).

The board never writes there. Each call opens the file read-only (`mode=ro`), so a missing
database (logger not started yet) gives empty answers rather than creating a file. Times are
the stored RFC 3339 text, which sorts and compares as text.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.logger.store.sqlite_schema import open_db

VITAL_COLUMNS = (
    "spo2",
    "heart_rate",
    "pulse_rate",
    "nibp_sys",
    "nibp_dia",
    "nibp_mean",
    "resp_rate",
)
MAX_POINTS = 20_000  # a 3-hour session at 1 Hz is ~11k


@contextmanager
def _ro(db: Path | None) -> Iterator[sqlite3.Connection | None]:
    if db is None or not Path(db).exists():
        yield None
        return
    conn = open_db(db, readonly=True)
    try:
        yield conn
    finally:
        conn.close()


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def session(db: Path | None, site: str, room: str, session_id: str) -> dict[str, Any] | None:
    with _ro(db) as conn:
        if conn is None:
            return None
        rows = _dicts(
            conn.execute(
                "SELECT * FROM sessions WHERE site = ? AND room = ? AND session_id = ?",
                (site, room, session_id),
            )
        )
    return rows[0] if rows else None


def sessions(db: Path | None, site: str, room: str, limit: int = 20) -> list[dict[str, Any]]:
    with _ro(db) as conn:
        if conn is None:
            return []
        return _dicts(
            conn.execute(
                "SELECT * FROM sessions WHERE site = ? AND room = ? "
                "ORDER BY started_at DESC LIMIT ?",
                (site, room, limit),
            )
        )


def vitals(
    db: Path | None, site: str, room: str, since: str, until: str | None = None
) -> list[dict[str, Any]]:
    """Readings of a room from `since` (inclusive) to `until` (exclusive), oldest first."""
    sql = (
        f"SELECT seq, ts, {', '.join(VITAL_COLUMNS)} FROM vitals "
        "WHERE site = ? AND room = ? AND ts >= ?"
    )
    args: list[Any] = [site, room, since]
    if until:
        sql += " AND ts < ?"
        args.append(until)
    sql += " ORDER BY ts, seq LIMIT ?"
    args.append(MAX_POINTS)
    with _ro(db) as conn:
        return [] if conn is None else _dicts(conn.execute(sql, args))


def events(
    db: Path | None, site: str, room: str, since: str, until: str | None = None
) -> list[dict[str, Any]]:
    sql = (
        "SELECT seq, ts, kind, call_id, priority, phase, from_phase, session_id, by, reason, "
        "detail FROM events WHERE site = ? AND room = ? AND ts >= ?"
    )
    args: list[Any] = [site, room, since]
    if until:
        sql += " AND ts < ?"
        args.append(until)
    sql += " ORDER BY ts, seq LIMIT 5000"
    with _ro(db) as conn:
        rows = [] if conn is None else _dicts(conn.execute(sql, args))
    for row in rows:
        row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
    return rows


def calls(db: Path | None, site: str, since: str, until: str) -> list[dict[str, Any]]:
    """Calls placed in [since, until), newest first."""
    with _ro(db) as conn:
        if conn is None:
            return []
        return _dicts(
            conn.execute(
                "SELECT room, call_id, priority, status, placed_at, claimed_at, claimed_by, "
                "escalated_at, cancelled_at, cancelled_by, response_s, resolved_s FROM calls "
                "WHERE site = ? AND placed_at >= ? AND placed_at < ? "
                "ORDER BY placed_at DESC LIMIT 5000",
                (site, since, until),
            )
        )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def daily_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and response times (placed to claimed) of one day's calls."""
    response = sorted(float(r["response_s"]) for r in rows if r["response_s"] is not None)
    resolved = sorted(float(r["resolved_s"]) for r in rows if r["resolved_s"] is not None)
    by_priority: dict[str, int] = {}
    for r in rows:
        key = r["priority"] or "normal"
        by_priority[key] = by_priority.get(key, 0) + 1
    return {
        "calls": len(rows),
        "by_priority": by_priority,
        "claimed": len(response),
        "never_claimed": sum(1 for r in rows if r["claimed_at"] is None),
        "escalated": sum(1 for r in rows if r["escalated_at"] is not None),
        "open": sum(1 for r in rows if r["cancelled_at"] is None),
        "response_median_s": statistics.median(response) if response else None,
        "response_p90_s": _percentile(response, 90),
        "response_max_s": response[-1] if response else None,
        "resolved_median_s": statistics.median(resolved) if resolved else None,
    }
