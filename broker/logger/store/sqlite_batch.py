"""SQLite store, write side: one transaction per batch, idempotent on (site, room, seq).

How this works: inside the batch's transaction, the `messages` ledger is asked which of the
batch's `(site, room, seq)` it already holds (one query per room). A known key with the same
digest is a replay (QoS 1 redelivery, outbox resend) and is skipped; with another digest it goes
to quarantine as "duplicate seq with different content". New messages go into the ledger and
`vitals` with `executemany` (`ON CONFLICT(site, room, seq) DO NOTHING` as a second guard);
events, state, call and health update their tables one by one (`sqlite_timeline.py` for calls
and sessions); `room_state.last_*` is written once per room per batch. Schema:
`sqlite_schema.py`. Only `sqlite.py` (the store) uses this module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import attrgetter

from broker.logger.ingest import Accepted, Availability, Classified, Command, Ignored, Rejected
from broker.logger.store import sqlite_timeline as timeline
from broker.logger.store.base import BatchStats
from contract import messages
from contract.messages import VITAL_FIELDS
from contract.timefmt import format_ts

_VITAL_INSERT = (
    "INSERT INTO vitals (site, room, seq, ts, clock_synced, received_at, "
    + ", ".join(VITAL_FIELDS)
    + ", protocol, device_time, alarms, quality, alarm_raw, exc_raw) VALUES ("
    + ", ".join("?" * (6 + len(VITAL_FIELDS) + 6))
    + ") ON CONFLICT (site, room, seq) DO NOTHING"
)
_CALL_EVENTS = {
    messages.EventKind.CALL_PLACED,
    messages.EventKind.CALL_PRIORITY_RAISED,
    messages.EventKind.CALL_CLAIMED,
    messages.EventKind.CALL_ESCALATED,
    messages.EventKind.CALL_CANCELLED,
}


def _fast_ts(value: datetime) -> str:
    """`format_ts` for the contract's datetimes (already UTC), without strftime (hot path)."""
    if value.utcoffset() == _ZERO:
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return format_ts(value)


def _json_list(values: list[str]) -> str:
    return json.dumps(values) if values else "[]"


_ZERO = timedelta(0)
_vital_values = attrgetter(*VITAL_FIELDS)


class BatchWriter:
    """Writes batches and runs retention on one connection (the store's; one thread)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    # -- one batch --------------------------------------------------------------------
    def write_batch(self, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        """Write `(classified, received_at)` items in one transaction; return what happened."""
        stats = BatchStats()
        accepted: list[tuple[Accepted, str]] = []
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for item, received_at in items:
                if isinstance(item, Accepted):
                    accepted.append((item, received_at))
                else:
                    self._write_other(cur, item, received_at, stats)
            if accepted:
                self._write_accepted(cur, accepted, stats)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return stats

    def _write_other(
        self, cur: sqlite3.Cursor, item: Classified, received_at: str, stats: BatchStats
    ) -> None:
        if isinstance(item, Rejected):
            self.quarantine(cur, received_at, item.topic, item.reason, item.raw, item.size)
            stats.quarantined += 1
        elif isinstance(item, Availability):
            self._availability(cur, item, received_at)
        elif isinstance(item, Command):
            cur.execute(
                "INSERT INTO commands (site, room, name, by, received_at, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.site,
                    item.room,
                    item.name,
                    getattr(item.cmd, "by", None),
                    received_at,
                    item.cmd.model_dump_json(),
                ),
            )
            stats.commands += 1
        elif isinstance(item, Ignored):
            stats.ignored += 1

    @staticmethod
    def quarantine(
        cur: sqlite3.Cursor | sqlite3.Connection,
        received_at: str,
        topic: str,
        reason: str,
        raw: bytes,
        size: int,
    ) -> None:
        cur.execute(
            "INSERT INTO quarantine (received_at, topic, reason, size, raw) VALUES (?, ?, ?, ?, ?)",
            (received_at, topic, reason, size, raw),
        )

    @staticmethod
    def _known(
        cur: sqlite3.Cursor, accepted: list[tuple[Accepted, str]]
    ) -> dict[tuple[str, str, int], tuple[str, str]]:
        """Ledger rows already stored for the batch's keys: {(site, room, seq): (digest, kind)}."""
        wanted: dict[tuple[str, str], set[int]] = {}
        for item, _ in accepted:
            wanted.setdefault((item.msg.site, item.msg.room), set()).add(item.msg.seq)
        known: dict[tuple[str, str, int], tuple[str, str]] = {}
        for (site, room), seqs in wanted.items():
            ordered = sorted(seqs)
            for i in range(0, len(ordered), 500):
                chunk = ordered[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                for seq, digest, kind in cur.execute(
                    "SELECT seq, digest, kind FROM messages WHERE site = ? AND room = ? "
                    f"AND seq IN ({marks})",
                    (site, room, *chunk),
                ):
                    known[(site, room, seq)] = (digest, kind)
        return known

    def _write_accepted(
        self, cur: sqlite3.Cursor, accepted: list[tuple[Accepted, str]], stats: BatchStats
    ) -> None:
        known = self._known(cur, accepted)
        ledger: list[tuple[object, ...]] = []
        vitals: list[tuple[object, ...]] = []
        others: list[tuple[messages.Envelope, str]] = []
        latest: dict[tuple[str, str], tuple[int, str, str]] = {}
        for item, received_at in accepted:
            m = item.msg
            key = (m.site, m.room, m.seq)
            previous = known.get(key)
            if previous is not None:
                if previous[0] == item.digest:
                    stats.duplicates += 1
                else:
                    self.quarantine(
                        cur,
                        received_at,
                        item.topic,
                        "duplicate seq with different content "
                        f"(seq {m.seq} already stored as {previous[1]})",
                        item.raw,
                        len(item.raw),
                    )
                    stats.quarantined += 1
                continue
            known[key] = (item.digest, item.leaf)
            ts = _fast_ts(m.ts)
            is_vitals = isinstance(m, messages.VitalsMessage)
            payload = None if is_vitals else item.raw.decode("utf-8", "replace")
            ledger.append(
                (*key, item.leaf, ts, int(m.clock_synced), received_at, item.digest, payload)
            )
            if isinstance(m, messages.VitalsMessage):
                vitals.append(self._vitals_row(m, ts, received_at))
            else:
                others.append((m, received_at))
            stats.inserted += 1
            stats.by_kind[item.leaf] = stats.by_kind.get(item.leaf, 0) + 1
            last = latest.get((m.site, m.room))
            if last is None or m.seq > last[0]:
                latest[(m.site, m.room)] = (m.seq, ts, received_at)
        cur.executemany(
            "INSERT INTO messages (site, room, seq, kind, ts, clock_synced, received_at, digest, "
            "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (site, room, seq) DO NOTHING",
            ledger,
        )
        cur.executemany(_VITAL_INSERT, vitals)
        for m, received_at in others:
            self._dispatch(cur, m, received_at)
        for (site, room), (seq, ts, received_at) in latest.items():
            timeline.ensure_room(cur, site, room)
            cur.execute(
                "UPDATE room_state SET last_seq = ?, last_ts = ?, last_received_at = ? "
                "WHERE site = ? AND room = ? AND (last_seq IS NULL OR last_seq < ?)",
                (seq, ts, received_at, site, room, seq),
            )

    def _dispatch(self, cur: sqlite3.Cursor, m: messages.Envelope, received_at: str) -> None:
        if isinstance(m, messages.EventMessage):
            self._event(cur, m, received_at)
        elif isinstance(m, messages.StateMessage):
            self._state(cur, m)
        elif isinstance(m, messages.CallMessage):
            self._call_snapshot(cur, m)
        elif isinstance(m, messages.HealthMessage):
            timeline.ensure_room(cur, m.site, m.room)
            cur.execute(
                "UPDATE room_state SET health_seq = ?, health = ? WHERE site = ? AND room = ? "
                "AND (health_seq IS NULL OR health_seq < ?)",
                (m.seq, m.model_dump_json(), m.site, m.room, m.seq),
            )

    # -- per kind ---------------------------------------------------------------------
    @staticmethod
    def _vitals_row(m: messages.VitalsMessage, ts: str, received_at: str) -> tuple[object, ...]:
        return (
            m.site,
            m.room,
            m.seq,
            ts,
            int(m.clock_synced),
            received_at,
            *_vital_values(m),
            m.protocol,
            m.device_time,
            _json_list(m.alarms),
            _json_list(m.quality),
            m.alarm_raw,
            m.exc_raw,
        )

    def _event(self, cur: sqlite3.Cursor, m: messages.EventMessage, received_at: str) -> None:
        cur.execute(
            "INSERT INTO events (site, room, seq, ts, clock_synced, received_at, kind, call_id, "
            "priority, phase, from_phase, session_id, by, reason, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (site, room, seq) DO NOTHING",
            (
                m.site,
                m.room,
                m.seq,
                format_ts(m.ts),
                int(m.clock_synced),
                received_at,
                m.kind.value,
                m.call_id,
                m.priority,
                m.phase,
                m.from_phase,
                m.session_id,
                m.by,
                m.reason,
                json.dumps(m.detail),
            ),
        )
        if m.kind in _CALL_EVENTS and m.call_id:
            timeline.call_event(cur, m)
        elif m.kind is messages.EventKind.PHASE_CHANGED and m.phase is not None:
            timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.ts)
        elif m.kind is messages.EventKind.PHASE_OVERRUN and m.session_id:
            cur.execute(
                "UPDATE sessions SET overruns = overruns + 1 WHERE site = ? AND room = ? "
                "AND session_id = ?",
                (m.site, m.room, m.session_id),
            )

    def _call_snapshot(self, cur: sqlite3.Cursor, m: messages.CallMessage) -> None:
        timeline.ensure_room(cur, m.site, m.room)
        cur.execute(
            "UPDATE room_state SET call_seq = ?, call = ?, call_status = ? WHERE site = ? "
            "AND room = ? AND (call_seq IS NULL OR call_seq < ?)",
            (m.seq, m.model_dump_json(), m.status.value, m.site, m.room, m.seq),
        )
        timeline.call_snapshot(cur, m)

    def _state(self, cur: sqlite3.Cursor, m: messages.StateMessage) -> None:
        timeline.ensure_room(cur, m.site, m.room)
        cur.execute(
            "UPDATE room_state SET state_seq = ?, state = ?, phase = ?, session_id = ? "
            "WHERE site = ? AND room = ? AND (state_seq IS NULL OR state_seq < ?)",
            (m.seq, m.model_dump_json(), m.phase.value, m.session_id, m.site, m.room, m.seq),
        )
        if m.session_id is not None or m.phase is messages.Phase.IDLE:
            timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.since)

    def _availability(self, cur: sqlite3.Cursor, a: Availability, received_at: str) -> None:
        timeline.ensure_room(cur, a.site, a.room)
        row = cur.execute(
            "SELECT availability FROM room_state WHERE site = ? AND room = ?", (a.site, a.room)
        ).fetchone()
        if row is not None and row[0] == a.status:
            return
        cur.execute(
            "UPDATE room_state SET availability = ?, availability_at = ? "
            "WHERE site = ? AND room = ?",
            (a.status, received_at, a.site, a.room),
        )
        cur.execute(
            "INSERT INTO availability_log (site, room, status, received_at) VALUES (?, ?, ?, ?)",
            (a.site, a.room, a.status, received_at),
        )

    # -- retention --------------------------------------------------------------------
    def delete_old_vitals(self, cutoff: str, batch: int = 500, max_batches: int = 20) -> int:
        """Delete vitals with `ts < cutoff`, room by room, `batch` rows per transaction.

        At most `max_batches` transactions per call, so ingest is never held up for long;
        the logger calls it again at the next interval. Returns the rows deleted.
        """
        total = 0
        budget = max_batches
        rooms = self.conn.execute("SELECT site, room FROM room_state ORDER BY site, room")
        for site, room in rooms.fetchall():
            while budget > 0:
                budget -= 1
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    seqs = self.conn.execute(
                        "DELETE FROM vitals WHERE site = ? AND room = ? AND seq IN ("
                        "SELECT seq FROM vitals WHERE site = ? AND room = ? AND ts < ? "
                        "ORDER BY ts LIMIT ?) RETURNING seq",
                        (site, room, site, room, cutoff, batch),
                    ).fetchall()
                    self.conn.executemany(
                        "DELETE FROM messages WHERE site = ? AND room = ? AND seq = ?",
                        [(site, room, seq) for (seq,) in seqs],
                    )
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                total += len(seqs)
                if len(seqs) < batch:
                    break
        return total
