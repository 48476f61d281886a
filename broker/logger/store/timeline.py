"""Calls and sessions: one row per call and per session, built from events and snapshots.

One `Timeline` per engine (`Timeline(SQLITE)`, `Timeline(POSTGRES)`): the same SQL for both,
the engines' differences (`MAX`/`GREATEST`, durations from RFC 3339 text) taken from the
`Dialect`. Methods take the batch's cursor (the caller owns the transaction). Events and
retained snapshots may arrive in any order and more than once: the first value seen for a time
wins (`COALESCE`), and the derived columns (status, response_s, durations) are recomputed each
time.
"""

from __future__ import annotations

from datetime import datetime

from broker.logger.store.dialect import Cursor, Dialect
from contract import messages
from contract.timefmt import format_ts

_PHASE_COLUMN = {
    messages.Phase.PRE_CHECK: "pre_check_at",
    messages.Phase.INFUSION: "infusion_at",
    messages.Phase.RECOVERY: "recovery_at",
    messages.Phase.DISCHARGE_READY: "discharge_ready_at",
}
_CALL_TIME_COLUMN = {
    messages.EventKind.CALL_PLACED: "placed_at",
    messages.EventKind.CALL_CLAIMED: "claimed_at",
    messages.EventKind.CALL_ESCALATED: "escalated_at",
    messages.EventKind.CALL_CANCELLED: "cancelled_at",
}
_INFUSION_END = "COALESCE(recovery_at, discharge_ready_at, ended_at)"
_RECOVERY_END = "COALESCE(discharge_ready_at, ended_at)"
_CALL_KEY = "WHERE site = ? AND room = ? AND call_id = ?"
_SESSION_KEY = "WHERE site = ? AND room = ? AND session_id = ?"


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None


class Timeline:
    """The calls and sessions tables' rules, in one engine's SQL."""

    def __init__(self, dialect: Dialect):
        d = self.d = dialect
        self._call_derived = d.sql(
            "UPDATE calls SET "
            "status = CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled' "
            "WHEN claimed_at IS NOT NULL THEN 'claimed' "
            "WHEN escalated_at IS NOT NULL THEN 'escalated' ELSE 'placed' END, "
            f"response_s = {d.seconds('placed_at', 'claimed_at')}, "
            f"resolved_s = {d.seconds('placed_at', 'cancelled_at')} {_CALL_KEY}"
        )
        self._durations = d.sql(
            "UPDATE sessions SET "
            f"infusion_s = {d.seconds('infusion_at', _INFUSION_END)}, "
            f"recovery_s = {d.seconds('recovery_at', _RECOVERY_END)} {_SESSION_KEY}"
        )
        self._session_upsert = d.sql(
            "INSERT INTO sessions (site, room, session_id, phase, started_at, last_seq) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, room, session_id) DO UPDATE SET "
            f"started_at = {d.least}(sessions.started_at, excluded.started_at), "
            "phase = CASE WHEN excluded.last_seq > sessions.last_seq THEN excluded.phase "
            "ELSE sessions.phase END, "
            f"last_seq = {d.greatest}(sessions.last_seq, excluded.last_seq)"
        )

    def ensure_room(self, cur: Cursor, site: str, room: str) -> None:
        cur.execute(
            self.d.sql(
                "INSERT INTO room_state (site, room) VALUES (?, ?) "
                "ON CONFLICT (site, room) DO NOTHING"
            ),
            (site, room),
        )

    def call_row(self, cur: Cursor, site: str, room: str, call_id: str, seq: int) -> None:
        cur.execute(
            self.d.sql(
                "INSERT INTO calls (site, room, call_id, status, last_seq) "
                "VALUES (?, ?, ?, 'placed', ?) ON CONFLICT (site, room, call_id) "
                f"DO UPDATE SET last_seq = {self.d.greatest}(calls.last_seq, excluded.last_seq)"
            ),
            (site, room, call_id, seq),
        )

    def call_event(self, cur: Cursor, m: messages.EventMessage) -> None:
        assert m.call_id is not None
        self.call_row(cur, m.site, m.room, m.call_id, m.seq)
        key = (m.site, m.room, m.call_id)
        sql = self.d.sql
        column = _CALL_TIME_COLUMN.get(m.kind)
        if column is not None:
            cur.execute(
                sql(f"UPDATE calls SET {column} = COALESCE({column}, ?) {_CALL_KEY}"),
                (format_ts(m.ts), *key),
            )
        if m.priority is not None:
            cur.execute(sql(f"UPDATE calls SET priority = ? {_CALL_KEY}"), (m.priority.value, *key))
        by_column = {
            messages.EventKind.CALL_CLAIMED: "claimed_by",
            messages.EventKind.CALL_CANCELLED: "cancelled_by",
        }.get(m.kind)
        if by_column is not None and m.by:
            cur.execute(
                sql(f"UPDATE calls SET {by_column} = COALESCE({by_column}, ?) {_CALL_KEY}"),
                (m.by, *key),
            )
        self.call_derived(cur, key)

    def call_derived(self, cur: Cursor, key: tuple[str, str, str]) -> None:
        cur.execute(self._call_derived, key)

    def phase_change(
        self,
        cur: Cursor,
        site: str,
        room: str,
        seq: int,
        session_id: str | None,
        phase: messages.Phase,
        at_dt: datetime,
    ) -> None:
        at = format_ts(at_dt)
        sql = self.d.sql
        if session_id is None:
            if phase is not messages.Phase.IDLE:
                return
            row = cur.execute(
                sql(
                    "SELECT session_id FROM sessions WHERE site = ? AND room = ? "
                    "AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1"
                ),
                (site, room),
            ).fetchone()
            if row is None:
                return
            session_id = str(row[0])
        cur.execute(self._session_upsert, (site, room, session_id, phase.value, at, seq))
        key = (site, room, session_id)
        column = "ended_at" if phase is messages.Phase.IDLE else _PHASE_COLUMN[phase]
        cur.execute(
            sql(f"UPDATE sessions SET {column} = COALESCE({column}, ?) {_SESSION_KEY}"),
            (at, *key),
        )
        cur.execute(self._durations, key)

    def call_snapshot(self, cur: Cursor, m: messages.CallMessage) -> None:
        """Fill the `calls` rows from a retained `call`: every call of `calls` (schema 2), or
        the one call a schema-1 room describes in the top-level fields."""
        if m.calls:
            for c in m.calls:
                self._call_times(
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
        self._call_times(
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
        self,
        cur: Cursor,
        key: tuple[str, str, str],
        seq: int,
        placed_at: datetime | None,
        claimed_at: datetime | None,
        claimed_by: str | None,
        escalated_at: datetime | None,
        priority: messages.CallPriority | None,
    ) -> None:
        self.call_row(cur, *key, seq)
        cur.execute(
            self.d.sql(
                "UPDATE calls SET placed_at = COALESCE(placed_at, ?), "
                "claimed_at = COALESCE(claimed_at, ?), claimed_by = COALESCE(claimed_by, ?), "
                "escalated_at = COALESCE(escalated_at, ?), priority = COALESCE(?, priority) "
                f"{_CALL_KEY}"
            ),
            (
                _ts(placed_at),
                _ts(claimed_at),
                claimed_by,
                _ts(escalated_at),
                priority.value if priority else None,
                *key,
            ),
        )
        self.call_derived(cur, key)
