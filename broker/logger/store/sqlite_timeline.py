"""Calls and sessions: one row per call and per session, built from events and snapshots.

Functions take the batch's cursor (the caller owns the transaction). Events and retained
snapshots may arrive in any order and more than once: the first value seen for a time wins
(`COALESCE`), and the derived columns (status, response_s, durations) are recomputed each time.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from contract import messages
from contract.timefmt import format_ts

_PHASE_COLUMN = {
    messages.Phase.PRE_CHECK: "pre_check_at",
    messages.Phase.INFUSION: "infusion_at",
    messages.Phase.RECOVERY: "recovery_at",
    messages.Phase.DISCHARGE_READY: "discharge_ready_at",
}


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None


def ensure_room(cur: sqlite3.Cursor, site: str, room: str) -> None:
    cur.execute(
        "INSERT INTO room_state (site, room) VALUES (?, ?) ON CONFLICT (site, room) DO NOTHING",
        (site, room),
    )


def call_row(cur: sqlite3.Cursor, site: str, room: str, call_id: str, seq: int) -> None:
    cur.execute(
        "INSERT INTO calls (site, room, call_id, status, last_seq) "
        "VALUES (?, ?, ?, 'placed', ?) ON CONFLICT (site, room, call_id) "
        "DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
        (site, room, call_id, seq),
    )


def call_event(cur: sqlite3.Cursor, m: messages.EventMessage) -> None:
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
            f"UPDATE calls SET {column} = COALESCE({column}, ?) "
            "WHERE site = ? AND room = ? AND call_id = ?",
            (at, *key),
        )
    if m.priority is not None:
        cur.execute(
            "UPDATE calls SET priority = ? WHERE site = ? AND room = ? AND call_id = ?",
            (m.priority.value, *key),
        )
    if m.kind is messages.EventKind.CALL_CLAIMED and m.by:
        cur.execute(
            "UPDATE calls SET claimed_by = COALESCE(claimed_by, ?) "
            "WHERE site = ? AND room = ? AND call_id = ?",
            (m.by, *key),
        )
    if m.kind is messages.EventKind.CALL_CANCELLED and m.by:
        cur.execute(
            "UPDATE calls SET cancelled_by = COALESCE(cancelled_by, ?) "
            "WHERE site = ? AND room = ? AND call_id = ?",
            (m.by, *key),
        )
    call_derived(cur, key)


def call_derived(cur: sqlite3.Cursor, key: tuple[str, str, str]) -> None:
    cur.execute(
        "UPDATE calls SET "
        "status = CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled' "
        "WHEN claimed_at IS NOT NULL THEN 'claimed' "
        "WHEN escalated_at IS NOT NULL THEN 'escalated' ELSE 'placed' END, "
        "response_s = ROUND((julianday(claimed_at) - julianday(placed_at)) * 86400.0, 3), "
        "resolved_s = ROUND((julianday(cancelled_at) - julianday(placed_at)) * 86400.0, 3) "
        "WHERE site = ? AND room = ? AND call_id = ?",
        key,
    )


def phase_change(
    cur: sqlite3.Cursor,
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
            "SELECT session_id FROM sessions WHERE site = ? AND room = ? AND ended_at IS NULL "
            "ORDER BY started_at DESC LIMIT 1",
            (site, room),
        ).fetchone()
        if row is None:
            return
        session_id = str(row[0])
    cur.execute(
        "INSERT INTO sessions (site, room, session_id, phase, started_at, last_seq) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, room, session_id) DO UPDATE SET "
        "started_at = MIN(started_at, excluded.started_at), "
        "phase = CASE WHEN excluded.last_seq > last_seq THEN excluded.phase ELSE phase END, "
        "last_seq = MAX(last_seq, excluded.last_seq)",
        (site, room, session_id, phase.value, at, seq),
    )
    key = (site, room, session_id)
    column = "ended_at" if phase is messages.Phase.IDLE else _PHASE_COLUMN[phase]
    cur.execute(
        f"UPDATE sessions SET {column} = COALESCE({column}, ?) "
        "WHERE site = ? AND room = ? AND session_id = ?",
        (at, *key),
    )
    cur.execute(
        "UPDATE sessions SET "
        "infusion_s = ROUND((julianday(COALESCE(recovery_at, discharge_ready_at, ended_at)) "
        "- julianday(infusion_at)) * 86400.0, 3), "
        "recovery_s = ROUND((julianday(COALESCE(discharge_ready_at, ended_at)) "
        "- julianday(recovery_at)) * 86400.0, 3) "
        "WHERE site = ? AND room = ? AND session_id = ?",
        key,
    )


def call_snapshot(cur: sqlite3.Cursor, m: messages.CallMessage) -> None:
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
    cur: sqlite3.Cursor,
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
        "UPDATE calls SET placed_at = COALESCE(placed_at, ?), "
        "claimed_at = COALESCE(claimed_at, ?), claimed_by = COALESCE(claimed_by, ?), "
        "escalated_at = COALESCE(escalated_at, ?), priority = COALESCE(?, priority) "
        "WHERE site = ? AND room = ? AND call_id = ?",
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
