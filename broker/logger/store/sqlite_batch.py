"""SQLite store, write side: one transaction per batch, idempotent on (site, room, epoch, seq).

How this works: inside the batch's transaction, the `messages` ledger is asked which of the
batch's `(site, room, epoch, seq)` it already holds (one query per room and epoch). A known key
with the same digest is a replay (QoS 1 redelivery, outbox resend) and is skipped; with another
digest it goes to quarantine as "duplicate seq with different content". New messages go into
the ledger and `vitals` with `executemany` (`ON CONFLICT ... DO NOTHING` as a second guard);
events, state, call and health update their tables one by one (`sqlite_timeline.py` for calls
and sessions); `room_state.last_*` is written once per room per batch.

Which snapshot is the latest: the one with the highest `(rank, seq)`, where `rank` is the
order in which the logger first saw the message's epoch (`epochs`): a re-imaged room's new
epoch wins over the old one at its first message, whatever its seq.

The quarantine is bounded per bucket (the room its topic names, `base.quarantine_bucket`):
`quarantine_buckets` keeps each bucket's row and byte counts; at the end of a batch, every
bucket the batch added to and that is over a cap (`QuarantineLimits`) loses its oldest rows
(walked on the `(site, room, id)` index), counted in `dropped`, in the batch's transaction.
A `RateLimited` item (a rejection over its room's quarantine rate) stores no row: it is only
added to its bucket's `dropped`.
Schema:
`sqlite_schema.py`. Only `sqlite.py` (the store) uses this module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from operator import attrgetter

from broker.logger.ingest import (
    Accepted,
    Availability,
    Classified,
    Command,
    Ignored,
    RateLimited,
    Rejected,
)
from broker.logger.store.base import BatchStats, QuarantineLimits, quarantine_bucket
from broker.logger.store.dialect import SQLITE
from broker.logger.store.timeline import Timeline
from contract import messages
from contract.messages import VITAL_FIELDS
from contract.timefmt import format_ts

_VITAL_INSERT = (
    "INSERT INTO vitals (site, room, epoch, seq, ts, clock_synced, received_at, "
    + ", ".join(VITAL_FIELDS)
    + ", protocol, device_time, alarms, quality, alarm_raw, exc_raw, detail) VALUES ("
    + ", ".join("?" * (7 + len(VITAL_FIELDS) + 7))
    + ") ON CONFLICT (site, room, epoch, seq) DO NOTHING"
)
def _vitals_detail(m: messages.VitalsMessage) -> str | None:
    """The optional fields of a reading (issue 18) as JSON, or None when it had none."""
    detail = m.model_dump(mode="json", include=set(messages.OPTIONAL_VITALS_FIELDS))
    present = {k: v for k, v in detail.items() if v is not None}
    return json.dumps(present, separators=(",", ":"), sort_keys=True) if present else None


timeline = Timeline(SQLITE)
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
Key = tuple[str, str, str, int]  # (site, room, epoch, seq)


def _newer(prefix: str) -> str:
    """SQL: the snapshot at (rank, seq) = (?, ?) is newer than the stored `prefix_*` one."""
    return (
        f"({prefix}_rank IS NULL OR {prefix}_rank < ? "
        f"OR ({prefix}_rank = ? AND {prefix}_seq < ?))"
    )


class BatchWriter:
    """Writes batches on one connection (the store's; one thread; retention is
    `sqlite_retention.py`)."""

    def __init__(self, conn: sqlite3.Connection, limits: QuarantineLimits | None = None):
        self.conn = conn
        self.limits = limits or QuarantineLimits()
        self._quarantined: dict[tuple[str, str], list[int]] = {}  # [rows, bytes, rate-limited]
        self._ranks: dict[tuple[str, str, str], int] = {}  # committed epochs only
        self._pending_ranks: dict[tuple[str, str, str], int] = {}  # this batch's

    def _rank(self, cur: sqlite3.Cursor, site: str, room: str, epoch: str, seen: str) -> int:
        """The order in which the logger first saw this epoch of the room (added if new)."""
        key = (site, room, epoch)
        rank = self._ranks.get(key) or self._pending_ranks.get(key)
        if rank is None:
            cur.execute(
                "INSERT INTO epochs (site, room, epoch, first_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (site, room, epoch) DO NOTHING",
                (site, room, epoch, seen),
            )
            row = cur.execute(
                "SELECT id FROM epochs WHERE site = ? AND room = ? AND epoch = ?", key
            ).fetchone()
            rank = int(row[0])
            self._pending_ranks[key] = rank
        return rank

    # -- one batch --------------------------------------------------------------------
    def write_batch(self, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        """Write `(classified, received_at)` items in one transaction; return what happened."""
        stats = BatchStats()
        accepted: list[tuple[Accepted, str]] = []
        self._pending_ranks = {}
        self._quarantined = {}
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
            self._bound_quarantine(cur, stats)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._ranks.update(self._pending_ranks)  # a rolled-back epoch row is not remembered
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
        elif isinstance(item, RateLimited):  # over its room's rate: counted as dropped, not kept
            self._quarantined.setdefault(quarantine_bucket(item.topic), [0, 0, 0])[2] += 1
            stats.rate_limited += 1
        elif isinstance(item, Ignored):
            stats.ignored += 1

    def quarantine(
        self,
        cur: sqlite3.Cursor,
        received_at: str,
        topic: str,
        reason: str,
        raw: bytes,
        size: int,
    ) -> None:
        site, room = quarantine_bucket(topic)
        cur.execute(
            "INSERT INTO quarantine (received_at, topic, reason, size, raw, site, room) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (received_at, topic, reason, size, raw, site, room),
        )
        added = self._quarantined.setdefault((site, room), [0, 0, 0])
        added[0] += 1
        added[1] += len(raw)

    def _bound_quarantine(self, cur: sqlite3.Cursor, stats: BatchStats) -> None:
        """Count this batch's quarantine rows per bucket; trim the buckets now over a cap."""
        for (site, room), (rows, size, limited) in self._quarantined.items():
            row_count, byte_count = cur.execute(
                "INSERT INTO quarantine_buckets (site, room, row_count, byte_count, dropped) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, room) DO UPDATE SET "
                "row_count = row_count + excluded.row_count, "
                "byte_count = byte_count + excluded.byte_count, "
                "dropped = dropped + excluded.dropped RETURNING row_count, byte_count",
                (site, room, rows, size, limited),
            ).fetchone()
            extra_rows = row_count - self.limits.max_rows
            extra_bytes = byte_count - self.limits.max_bytes
            if extra_rows <= 0 and extra_bytes <= 0:
                continue
            dropped, freed, last_id = 0, 0, -1
            while dropped < extra_rows or freed < extra_bytes:
                oldest = cur.execute(
                    "SELECT id, length(raw) FROM quarantine WHERE site = ? AND room = ? "
                    "AND id > ? ORDER BY id LIMIT 1000",
                    (site, room, last_id),
                ).fetchall()
                if not oldest:
                    break
                for qid, length in oldest:
                    dropped, freed, last_id = dropped + 1, freed + int(length or 0), qid
                    if dropped >= extra_rows and freed >= extra_bytes:
                        break
            cur.execute(
                "DELETE FROM quarantine WHERE site = ? AND room = ? AND id <= ?",
                (site, room, last_id),
            )
            cur.execute(
                "UPDATE quarantine_buckets SET row_count = row_count - ?, "
                "byte_count = byte_count - ?, dropped = dropped + ? WHERE site = ? AND room = ?",
                (dropped, freed, dropped, site, room),
            )
            stats.quarantine_dropped += dropped

    @staticmethod
    def _known(
        cur: sqlite3.Cursor, accepted: list[tuple[Accepted, str]]
    ) -> dict[Key, tuple[str, str]]:
        """Ledger rows already stored for the batch's keys: {(site, room, epoch, seq): (digest,
        kind)}."""
        wanted: dict[tuple[str, str, str], set[int]] = {}
        for item, _ in accepted:
            m = item.msg
            wanted.setdefault((m.site, m.room, m.epoch), set()).add(m.seq)
        known: dict[Key, tuple[str, str]] = {}
        for (site, room, epoch), seqs in wanted.items():
            ordered = sorted(seqs)
            for i in range(0, len(ordered), 500):
                chunk = ordered[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                for seq, digest, kind in cur.execute(
                    "SELECT seq, digest, kind FROM messages WHERE site = ? AND room = ? "
                    f"AND epoch = ? AND seq IN ({marks})",
                    (site, room, epoch, *chunk),
                ):
                    known[(site, room, epoch, seq)] = (digest, kind)
        return known

    def _write_accepted(
        self, cur: sqlite3.Cursor, accepted: list[tuple[Accepted, str]], stats: BatchStats
    ) -> None:
        known = self._known(cur, accepted)
        ledger: list[tuple[object, ...]] = []
        vitals: list[tuple[object, ...]] = []
        others: list[tuple[messages.Envelope, int, str]] = []
        latest: dict[tuple[str, str], tuple[int, int, str, str, str]] = {}
        for item, received_at in accepted:
            m = item.msg
            key = (m.site, m.room, m.epoch, m.seq)
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
            rank = self._rank(cur, m.site, m.room, m.epoch, received_at)
            if isinstance(m, messages.VitalsMessage):
                vitals.append(self._vitals_row(m, ts, received_at))
            else:
                others.append((m, rank, received_at))
            stats.inserted += 1
            stats.by_kind[item.leaf] = stats.by_kind.get(item.leaf, 0) + 1
            last = latest.get((m.site, m.room))
            if last is None or (rank, m.seq) > (last[0], last[1]):
                latest[(m.site, m.room)] = (rank, m.seq, m.epoch, ts, received_at)
        cur.executemany(
            "INSERT INTO messages (site, room, epoch, seq, kind, ts, clock_synced, received_at, "
            "digest, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (site, room, epoch, seq) DO NOTHING",
            ledger,
        )
        cur.executemany(_VITAL_INSERT, vitals)
        for m, rank, received_at in others:
            self._dispatch(cur, m, rank, received_at)
        for (site, room), (rank, seq, epoch, ts, received_at) in latest.items():
            timeline.ensure_room(cur, site, room)
            cur.execute(
                "UPDATE room_state SET last_rank = ?, last_seq = ?, epoch = ?, last_ts = ?, "
                f"last_received_at = ? WHERE site = ? AND room = ? AND {_newer('last')}",
                (rank, seq, epoch, ts, received_at, site, room, rank, rank, seq),
            )

    def _dispatch(
        self, cur: sqlite3.Cursor, m: messages.Envelope, rank: int, received_at: str
    ) -> None:
        if isinstance(m, messages.EventMessage):
            self._event(cur, m, received_at)
        elif isinstance(m, messages.StateMessage):
            self._state(cur, m, rank)
        elif isinstance(m, messages.CallMessage):
            self._call_snapshot(cur, m, rank)
        elif isinstance(m, messages.HealthMessage):
            timeline.ensure_room(cur, m.site, m.room)
            cur.execute(
                "UPDATE room_state SET health_rank = ?, health_seq = ?, health = ? "
                f"WHERE site = ? AND room = ? AND {_newer('health')}",
                (rank, m.seq, m.model_dump_json(), m.site, m.room, rank, rank, m.seq),
            )

    # -- per kind ---------------------------------------------------------------------
    @staticmethod
    def _vitals_row(m: messages.VitalsMessage, ts: str, received_at: str) -> tuple[object, ...]:
        return (
            m.site,
            m.room,
            m.epoch,
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
            _vitals_detail(m),
        )

    def _event(self, cur: sqlite3.Cursor, m: messages.EventMessage, received_at: str) -> None:
        cur.execute(
            "INSERT INTO events (site, room, epoch, seq, ts, clock_synced, received_at, kind, "
            "call_id, priority, phase, from_phase, session_id, by, reason, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (site, room, epoch, seq) DO NOTHING",
            (
                m.site,
                m.room,
                m.epoch,
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

    def _call_snapshot(self, cur: sqlite3.Cursor, m: messages.CallMessage, rank: int) -> None:
        timeline.ensure_room(cur, m.site, m.room)
        cur.execute(
            "UPDATE room_state SET call_rank = ?, call_seq = ?, call = ?, call_status = ? "
            f"WHERE site = ? AND room = ? AND {_newer('call')}",
            (rank, m.seq, m.model_dump_json(), m.status.value, m.site, m.room, rank, rank, m.seq),
        )
        timeline.call_snapshot(cur, m)

    def _state(self, cur: sqlite3.Cursor, m: messages.StateMessage, rank: int) -> None:
        timeline.ensure_room(cur, m.site, m.room)
        cur.execute(
            "UPDATE room_state SET state_rank = ?, state_seq = ?, state = ?, phase = ?, "
            f"session_id = ? WHERE site = ? AND room = ? AND {_newer('state')}",
            (
                rank, m.seq, m.model_dump_json(), m.phase.value, m.session_id,
                m.site, m.room, rank, rank, m.seq,
            ),
        )  # fmt: skip
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
