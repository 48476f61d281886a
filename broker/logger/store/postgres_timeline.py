"""PostgreSQL: calls and sessions, one row each, built from events and snapshots.

The same rules as `sqlite_timeline.py` (keep the two in step), in PostgreSQL's SQL: `GREATEST`/
`LEAST` for SQLite's scalar `MAX`/`MIN`, durations from the RFC 3339 text cast to `timestamptz`.

Functions take the batch's cursor (the caller owns the transaction). Events and retained
snapshots may arrive in any order and more than once: the first value seen for a time wins
(`COALESCE`), and the derived columns (status, response_s, durations) are recomputed each time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from contract import messages
from contract.timefmt import format_ts

_PHASE_COLUMN = {
    messages.Phase.PRE_CHECK: "pre_check_at",
    messages.Phase.INFUSION: "infusion_at",
    messages.Phase.RECOVERY: "recovery_at",
    messages.Phase.DISCHARGE_READY: "discharge_ready_at",
}


Cursor = psycopg.Cursor[Any]
_INFUSION_END = "COALESCE(recovery_at, discharge_ready_at, ended_at)"
_RECOVERY_END = "COALESCE(discharge_ready_at, ended_at)"


def _seconds(start: str, end: str) -> str:
    """SQL: seconds from `start` to `end` (RFC 3339 text), rounded to the millisecond."""
    return f"ROUND(EXTRACT(EPOCH FROM ({end})::timestamptz - ({start})::timestamptz), 3)::float8"


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None


def ensure_room(cur: Cursor, site: str, room: str) -> None:
    cur.execute(
        "INSERT INTO room_state (site, room) VALUES (%s, %s) ON CONFLICT (site, room) DO NOTHING",
        (site, room),
    )


def call_row(cur: Cursor, site: str, room: str, call_id: str, seq: int) -> None:
    cur.execute(
        "INSERT INTO calls (site, room, call_id, status, last_seq) "
        "VALUES (%s, %s, %s, 'placed', %s) ON CONFLICT (site, room, call_id) "
        "DO UPDATE SET last_seq = GREATEST(calls.last_seq, excluded.last_seq)",
        (site, room, call_id, seq),
    )


def call_event(cur: Cursor, m: messages.EventMessage) -> None:
    assert m.call_id is not None
    call_row(cur, m.site, m.room, m.call_id, m.seq)
    at = format_ts(m.ts)
    key = (m.site, m.room, m.call_id)
    column = {
        messages.EventKind.CALL_PLACED: "placed_at",
        messages.EventKind.CALL_CLAIMED: "claimed_at",
        messages.EventKind.CALL_ESCALATED: "escalated_at",
        messages.EventKind.CALL_CANCELLED: "cancelled_at",
    }.get(m.kind)
    if column is not None:
        cur.execute(
            f"UPDATE calls SET {column} = COALESCE({column}, %s) "
            "WHERE site = %s AND room = %s AND call_id = %s",
            (at, *key),
        )
    if m.priority is not None:
        cur.execute(
            "UPDATE calls SET priority = %s WHERE site = %s AND room = %s AND call_id = %s",
            (m.priority.value, *key),
        )
    if m.kind is messages.EventKind.CALL_CLAIMED and m.by:
        cur.execute(
            "UPDATE calls SET claimed_by = COALESCE(claimed_by, %s) "
            "WHERE site = %s AND room = %s AND call_id = %s",
            (m.by, *key),
        )
    if m.kind is messages.EventKind.CALL_CANCELLED and m.by:
        cur.execute(
            "UPDATE calls SET cancelled_by = COALESCE(cancelled_by, %s) "
            "WHERE site = %s AND room = %s AND call_id = %s",
            (m.by, *key),
        )
    call_derived(cur, key)


def call_derived(cur: Cursor, key: tuple[str, str, str]) -> None:
    cur.execute(
        "UPDATE calls SET "
        "status = CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled' "
        "WHEN claimed_at IS NOT NULL THEN 'claimed' "
        "WHEN escalated_at IS NOT NULL THEN 'escalated' ELSE 'placed' END, "
        f"response_s = {_seconds('placed_at', 'claimed_at')}, "
        f"resolved_s = {_seconds('placed_at', 'cancelled_at')} "
        "WHERE site = %s AND room = %s AND call_id = %s",
        key,
    )


def phase_change(
    cur: Cursor,
    site: str,
    room: str,
    seq: int,
    session_id: str | None,
    phase: messages.Phase,
    at_dt: datetime,
) -> None:
    at = format_ts(at_dt)
    if session_id is None:
        if phase is not messages.Phase.IDLE:
            return
        row = cur.execute(
            "SELECT session_id FROM sessions WHERE site = %s AND room = %s AND ended_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (site, room),
        ).fetchone()
        if row is None:
            return
        session_id = str(row[0])
    cur.execute(
        "INSERT INTO sessions (site, room, session_id, phase, started_at, last_seq) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (site, room, session_id) DO UPDATE SET "
        "started_at = LEAST(sessions.started_at, excluded.started_at), "
        "phase = CASE WHEN excluded.last_seq > sessions.last_seq THEN excluded.phase "
        "ELSE sessions.phase END, "
        "last_seq = GREATEST(sessions.last_seq, excluded.last_seq)",
        (site, room, session_id, phase.value, at, seq),
    )
    key = (site, room, session_id)
    column = "ended_at" if phase is messages.Phase.IDLE else _PHASE_COLUMN[phase]
    cur.execute(
        f"UPDATE sessions SET {column} = COALESCE({column}, %s) "
        "WHERE site = %s AND room = %s AND session_id = %s",
        (at, *key),
    )
    cur.execute(
        "UPDATE sessions SET "
        f"infusion_s = {_seconds('infusion_at', _INFUSION_END)}, "
        f"recovery_s = {_seconds('recovery_at', _RECOVERY_END)} "
        "WHERE site = %s AND room = %s AND session_id = %s",
        key,
    )


def call_snapshot(cur: Cursor, m: messages.CallMessage) -> None:
    """Fill the `calls` rows from a retained `call`: every call of `calls` (schema 2), or the
    one call a schema-1 room describes in the top-level fields."""
    if m.calls:
        for c in m.calls:
            _call_times(
                cur,
                (m.site, m.room, c.call_id),
                m.seq,
                c.placed_at,
                c.claimed_at,
                c.claimed_by,
                c.escalated_at,
                c.priority,
            )
        return
    if not m.call_id or m.status is messages.CallStatus.IDLE:
        return
    _call_times(
        cur,
        (m.site, m.room, m.call_id),
        m.seq,
        m.placed_at,
        m.claimed_at,
        m.claimed_by,
        m.escalated_at,
        m.priority,
    )


def _call_times(
    cur: Cursor,
    key: tuple[str, str, str],
    seq: int,
    placed_at: datetime | None,
    claimed_at: datetime | None,
    claimed_by: str | None,
    escalated_at: datetime | None,
    priority: messages.CallPriority | None,
) -> None:
    call_row(cur, *key, seq)
    cur.execute(
        "UPDATE calls SET placed_at = COALESCE(placed_at, %s), "
        "claimed_at = COALESCE(claimed_at, %s), claimed_by = COALESCE(claimed_by, %s), "
        "escalated_at = COALESCE(escalated_at, %s), priority = COALESCE(%s, priority) "
        "WHERE site = %s AND room = %s AND call_id = %s",
        (
            _ts(placed_at),
            _ts(claimed_at),
            claimed_by,
            _ts(escalated_at),
            priority.value if priority else None,
            *key,
        ),
    )
    call_derived(cur, key)
