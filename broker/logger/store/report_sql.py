"""The reads behind the board's manager reports (issue 20): one SQL text per kind, shared by
the SQLite and the PostgreSQL store.

How this works: `report_query(kind, dialect, site, since, until)` returns the statement in the
engine's `Dialect` (`dialect.py`: its placeholder, and reading a number out of a stored JSON
payload, the only engine difference here) and its arguments; both stores run it in one shared
method, `reads.StoreReads.report_rows`. Times are the stored RFC 3339 UTC text on both engines,
so `since`/`until` compare as text. Every kind is capped at `MAX_REPORT_ROWS`, oldest first.

Kinds (`REPORT_KINDS`), each for one site and `[since, until)`:
- `call_events`  events of the calls and staff presence: room, epoch, seq, ts, kind, call_id,
                 priority, by, detail (decoded to a dict by the store).
- `room_events`  monitor link lost/restored and daemon starts: same columns.
- `availability` changes of a room's availability as the logger saw them: room, status,
                 received_at.
- `availability_before` each room's last availability change before `since` (its state when
                 the range starts; `until` unused): room, status, received_at.
- `backlog`      the health messages whose outbox held messages: room, ts, depth, oldest_age_s.
- `quarantine`   the messages refused from the site's rooms: room, received_at, reason.
"""

from __future__ import annotations

from typing import Any

from broker.logger.store.dialect import POSTGRES, SQLITE, Dialect

MAX_REPORT_ROWS = 50_000

CALL_EVENT_KINDS = (
    "call_placed",
    "call_priority_raised",
    "call_claimed",
    "call_escalated",
    "call_cancelled",
    "presence_started",
)
ROOM_EVENT_KINDS = ("monitor_link_lost", "monitor_link_restored", "daemon_started")
REPORT_KINDS = (
    "call_events",
    "room_events",
    "availability",
    "availability_before",
    "backlog",
    "quarantine",
)
DIALECTS = {d.name: d for d in (SQLITE, POSTGRES)}

_EVENT_COLUMNS = "room, epoch, seq, ts, kind, call_id, priority, by, detail"


def _kinds(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)  # constants of this module, never user input


def _sql(kind: str, d: Dialect) -> str:
    if kind in ("call_events", "room_events"):
        kinds = CALL_EVENT_KINDS if kind == "call_events" else ROOM_EVENT_KINDS
        return (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE site = ? AND ts >= ? AND ts < ? "
            f"AND kind IN ({_kinds(kinds)}) ORDER BY ts, room, seq LIMIT ?"
        )
    if kind == "availability":
        return (
            "SELECT room, status, received_at FROM availability_log "
            "WHERE site = ? AND received_at >= ? AND received_at < ? "
            "ORDER BY received_at, id LIMIT ?"
        )
    if kind == "availability_before":
        return (
            "SELECT room, status, received_at FROM availability_log WHERE id IN "
            "(SELECT MAX(id) FROM availability_log WHERE site = ? AND received_at < ? "
            "GROUP BY room) ORDER BY room LIMIT ?"
        )
    if kind == "backlog":
        depth = d.json_number("payload", "outbox", "depth")
        age = d.json_number("payload", "outbox", "oldest_age_s")
        return (
            f"SELECT room, ts, depth, oldest_age_s FROM (SELECT room, ts, seq, {depth} AS depth, "
            f"{age} AS oldest_age_s FROM messages WHERE site = ? AND kind = 'health' "
            f"AND ts >= ? AND ts < ?) h WHERE depth > 0 ORDER BY ts, room, seq LIMIT ?"
        )
    if kind == "quarantine":
        return (
            "SELECT room, received_at, reason FROM quarantine "
            "WHERE site = ? AND received_at >= ? AND received_at < ? "
            "ORDER BY id LIMIT ?"
        )
    raise ValueError(f"kind must be one of {', '.join(REPORT_KINDS)}")


def report_query(
    kind: str, dialect: Dialect | str, site: str, since: str, until: str
) -> tuple[str, tuple[Any, ...]]:
    """The statement of one report kind for the engine `dialect` (a `Dialect`, or its name:
    "sqlite" or "postgres"), with its arguments."""
    if isinstance(dialect, str):
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        dialect = DIALECTS[dialect]
    sql = dialect.sql(_sql(kind, dialect))
    if kind == "availability_before":
        return sql, (site, since, MAX_REPORT_ROWS)
    return sql, (site, since, until, MAX_REPORT_ROWS)
