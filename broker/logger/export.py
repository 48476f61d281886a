"""`roomctl log export` and `roomctl log rooms`: read the logger's database (read-only).

Exports stream rows (no full load in memory) as CSV or NDJSON. JSON columns (vitals alarms and
quality, event detail) stay JSON text in CSV and become objects in NDJSON; quarantine raw bytes
are base64 (`raw_b64`). `--since` is inclusive, `--until` exclusive; both compare the message's
own timestamp (`ts`; `placed_at` for calls, `started_at` for sessions, `received_at` for
quarantine), in UTC.
"""

from __future__ import annotations

import base64
import csv
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from broker.logger.store.sqlite_schema import open_db
from contract import topics
from contract.timefmt import format_ts

KINDS = ("vitals", "events", "calls", "sessions", "quarantine")
FORMATS = ("csv", "ndjson")
_TIME_COLUMN = {
    "vitals": "ts",
    "events": "ts",
    "calls": "placed_at",
    "sessions": "started_at",
    "quarantine": "received_at",
}
_ORDER = {
    "vitals": "site, room, seq",
    "events": "site, room, seq",
    "calls": "placed_at, site, room, call_id",
    "sessions": "started_at, site, room, session_id",
    "quarantine": "id",
}
_JSON_COLUMNS = {"alarms", "quality", "detail"}
_HIDDEN = {"id"}


def parse_time(value: str) -> str:
    """A date or RFC 3339 time (naive = UTC) as the stored text form, for comparisons."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"bad time {value!r}: use e.g. 2026-01-31 or 2026-01-31T08:00:00Z"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return format_ts(parsed)


def _query(
    kind: str, site: str, room: str | None, since: str | None, until: str | None
) -> tuple[str, list[Any]]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
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
    sql = f"SELECT * FROM {kind} WHERE {' AND '.join(where)} ORDER BY {_ORDER[kind]}"
    return sql, args


def iter_rows(
    conn: sqlite3.Connection,
    kind: str,
    site: str,
    room: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Iterator[dict[str, Any]]:
    sql, args = _query(kind, site, room, since, until)
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    for row in cur:
        record = {}
        for name, value in zip(names, row, strict=True):
            if name in _HIDDEN:
                continue
            if name == "raw":
                record["raw_b64"] = base64.b64encode(value).decode("ascii")
            else:
                record[name] = value
        yield record


def export(
    db: Path,
    out: TextIO,
    kind: str,
    fmt: str,
    site: str,
    room: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> int:
    """Write the rows to `out`; return how many."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    topics.check_ident("site", site)
    if room is not None:
        topics.check_ident("room", room)
    conn = open_db(db, readonly=True)
    count = 0
    try:
        writer: csv.DictWriter[str] | None = None
        for record in iter_rows(conn, kind, site, room, since, until):
            if fmt == "ndjson":
                for name in _JSON_COLUMNS & record.keys():
                    record[name] = json.loads(record[name]) if record[name] else record[name]
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(record), lineterminator="\n")
                    writer.writeheader()
                writer.writerow(record)
            count += 1
        if writer is None and fmt == "csv":
            sql, _ = _query(kind, site, room, since, until)
            names = [d[0] for d in conn.execute(sql + " LIMIT 0", _).description]
            names = ["raw_b64" if n == "raw" else n for n in names if n not in _HIDDEN]
            csv.writer(out, lineterminator="\n").writerow(names)
    finally:
        conn.close()
    return count


ROOM_COLUMNS = (
    "site",
    "room",
    "availability",
    "phase",
    "session_id",
    "call_status",
    "last_seq",
    "last_ts",
    "last_received_at",
)


def rooms(db: Path) -> list[dict[str, Any]]:
    """One dict per room known to the logger: latest availability, phase, call, last message."""
    conn = open_db(db, readonly=True)
    try:
        cur = conn.execute(f"SELECT {', '.join(ROOM_COLUMNS)} FROM room_state ORDER BY site, room")
        return [dict(zip(ROOM_COLUMNS, row, strict=True)) for row in cur]
    finally:
        conn.close()


def format_rooms(rows: list[dict[str, Any]]) -> str:
    """A plain text table (one line per room)."""
    if not rows:
        return "no rooms recorded yet\n"
    cols = list(ROOM_COLUMNS)
    widths = {
        c: max(len(c), *(len(str(r[c] if r[c] is not None else "-")) for r in rows)) for c in cols
    }
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    for r in rows:
        lines.append(
            "  ".join(str(r[c] if r[c] is not None else "-").ljust(widths[c]) for c in cols)
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"
