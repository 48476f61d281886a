"""The reads behind the board's manager reports (issue 20): one SQL text per kind, shared by
the SQLite and the PostgreSQL store.

How this works: `report_query(kind, dialect, site, since, until)` returns the statement with
the engine's placeholder (`?` or `%s`) and its arguments; each store runs it through its own
`_rows` in one method, `report_rows`. Times are the stored RFC 3339 UTC text on both engines,
so `since`/`until` compare as text. The only engine difference is reading a number out of a
stored JSON payload (`_JSON_NUMBER`). Every kind is capped at `MAX_REPORT_ROWS`, oldest first.

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
DIALECTS = ("sqlite", "postgres")

_PLACEHOLDER = {"sqlite": "?", "postgres": "%s"}
# a number at `$.a.b` of the `payload` JSON text
_JSON_NUMBER = {
    "sqlite": "CAST(json_extract(payload, '$.{a}.{b}') AS REAL)",
    "postgres": "CAST(payload::jsonb #>> '{{{a},{b}}}' AS DOUBLE PRECISION)",
}

_EVENT_COLUMNS = "room, epoch, seq, ts, kind, call_id, priority, by, detail"


def _kinds(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)  # constants of this module, never user input


def _sql(kind: str, dialect: str) -> str:
    p = _PLACEHOLDER[dialect]
    if kind in ("call_events", "room_events"):
        kinds = CALL_EVENT_KINDS if kind == "call_events" else ROOM_EVENT_KINDS
        return (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE site = {p} AND ts >= {p} AND ts < {p} "
            f"AND kind IN ({_kinds(kinds)}) ORDER BY ts, room, seq LIMIT {p}"
        )
    if kind == "availability":
        return (
            "SELECT room, status, received_at FROM availability_log "
            f"WHERE site = {p} AND received_at >= {p} AND received_at < {p} "
            f"ORDER BY received_at, id LIMIT {p}"
        )
    if kind == "availability_before":
        return (
            "SELECT room, status, received_at FROM availability_log WHERE id IN "
            f"(SELECT MAX(id) FROM availability_log WHERE site = {p} AND received_at < {p} "
            f"GROUP BY room) ORDER BY room LIMIT {p}"
        )
    if kind == "backlog":
        depth = _JSON_NUMBER[dialect].format(a="outbox", b="depth")
        age = _JSON_NUMBER[dialect].format(a="outbox", b="oldest_age_s")
        return (
            f"SELECT room, ts, depth, oldest_age_s FROM (SELECT room, ts, seq, {depth} AS depth, "
            f"{age} AS oldest_age_s FROM messages WHERE site = {p} AND kind = 'health' "
            f"AND ts >= {p} AND ts < {p}) h WHERE depth > 0 ORDER BY ts, room, seq LIMIT {p}"
        )
    if kind == "quarantine":
        return (
            "SELECT room, received_at, reason FROM quarantine "
            f"WHERE site = {p} AND received_at >= {p} AND received_at < {p} "
            f"ORDER BY id LIMIT {p}"
        )
    raise ValueError(f"kind must be one of {', '.join(REPORT_KINDS)}")


def report_query(
    kind: str, dialect: str, site: str, since: str, until: str
) -> tuple[str, tuple[Any, ...]]:
    """The statement of one report kind for the engine `dialect` ("sqlite" or "postgres"),
    with its arguments."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    sql = _sql(kind, dialect)
    if kind == "availability_before":
        return sql, (site, since, MAX_REPORT_ROWS)
    return sql, (site, since, until, MAX_REPORT_ROWS)
