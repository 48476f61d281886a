"""`roomctl log export` and `roomctl log rooms`: the logger's store as files (read-only).

Exports stream rows (no full load in memory) as CSV or NDJSON. JSON columns (vitals alarms and
quality, event detail) stay JSON text in CSV and become objects in NDJSON; quarantine raw bytes
are base64 (`raw_b64`). `--since` is inclusive, `--until` exclusive; both compare the message's
own timestamp (`ts`; `placed_at` for calls, `started_at` for sessions, `received_at` for
quarantine). Stored times are written as stored (RFC 3339 UTC); each row ends with `local_time`,
its own time on the site's clock with the zone named (`2026-11-30 18:08:18 EST`), and a date or a
time without a zone in `--since`/`--until` is read on that clock (a date: the start of the site's
local day). The site's zone is `--timezone`, else `$ROOMCTL_TIMEZONE`, else UTC.
"""

from __future__ import annotations

import base64
import csv
import json
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from broker.logger.store import LogStore
from broker.logger.store.base import EXPORT_KINDS, ROOM_COLUMNS
from contract import sitetime, topics
from contract.timefmt import format_ts

KINDS = EXPORT_KINDS
FORMATS = ("csv", "ndjson")
_JSON_COLUMNS = {"alarms", "quality", "detail"}
# Each kind's own time (what --since/--until compare), written again on the site's clock
OWN_TIME = {"vitals": "ts", "events": "ts", "calls": "placed_at", "sessions": "started_at",
            "quarantine": "received_at"}  # fmt: skip
LOCAL_COLUMN = "local_time"
_UTC = ZoneInfo("UTC")


def parse_time(value: str, tz: ZoneInfo = _UTC) -> str:
    """A date or RFC 3339 time as the stored text form, for comparisons: a date or a time
    without a zone is on the site's clock `tz` (UTC unless given)."""
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
        parsed = parsed.replace(tzinfo=tz)
    return format_ts(parsed.astimezone(UTC))


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """An export row as written: quarantine `raw` bytes become `raw_b64` (same place)."""
    if "raw" not in row:
        return row
    return {
        ("raw_b64" if k == "raw" else k): (base64.b64encode(v).decode("ascii") if k == "raw" else v)
        for k, v in row.items()
    }


def export(
    store: LogStore,
    out: TextIO,
    kind: str,
    fmt: str,
    site: str,
    room: str | None = None,
    since: str | None = None,
    until: str | None = None,
    tz: ZoneInfo = _UTC,
) -> int:
    """Write the rows to `out`, each with its own time on the site's clock `tz` last
    (`local_time`); return how many."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    topics.check_ident("site", site)
    if room is not None:
        topics.check_ident("room", room)
    count = 0
    writer: csv.DictWriter[str] | None = None
    own = OWN_TIME.get(kind)
    for row in store.export_rows(kind, site, room, since, until):
        record = _record(row)
        record[LOCAL_COLUMN] = sitetime.stamp(row[own], tz) if own and row.get(own) else None
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
        names = ["raw_b64" if n == "raw" else n for n in store.export_columns(kind)]
        names.append(LOCAL_COLUMN)
        csv.writer(out, lineterminator="\n").writerow(names)
    return count


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
