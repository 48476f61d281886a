"""The write side's rules, shared by both engines: what each kind of message does to the tables.

How this works: `BaseBatchWriter` holds everything a batch does that is the same on SQLite and
PostgreSQL, each statement written once with `?` marks and rendered by the engine's `Dialect`:
- commands, availability changes, the notifier's page reports and quarantine rows
  (`_write_other`, `quarantine`);
- a replayed key (`_replay`): the same digest is a duplicate, another one goes to quarantine
  as "duplicate seq with different content";
- the new accepted messages sorted into vitals rows and the rest, and the latest snapshot of
  each room (`_collect`); events, state, call and health snapshots (`_dispatch`; calls and
  sessions through `timeline.py`), and `room_state.last_*` once per room (`_advance_rooms`);
- the quarantine caps (`_bound_quarantine`): this batch's quarantine rows are inserted at the
  end, in order, counted per bucket (`quarantine_buckets`), and every bucket the batch added to
  that is over a cap (`QuarantineLimits`) loses its oldest rows (walked on the
  `(site, room, id)` index), counted in `dropped`. A `RateLimited` item stores no row: it is
  only added to its bucket's `dropped`.

Which snapshot is the latest: the one with the highest `(rank, seq)`, where `rank` is the order
in which the logger first saw the message's epoch (`epochs`): a re-imaged room's new epoch wins
over the old one at its first message, whatever its seq.

An engine's writer (`sqlite_batch.py`, `postgres_batch.py`) owns the transaction, finds which
keys are new and writes the ledger and vitals rows in its fastest way, and says whether a room's
`room_state` row must be made before it is updated (`_ensure_room`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from operator import attrgetter

from broker.logger.ingest import (
    Accepted,
    Availability,
    Classified,
    Command,
    Ignored,
    PageReport,
    RateLimited,
    Rejected,
)
from broker.logger.store.base import (
    PAGE_INSERT_COLUMNS,
    BatchStats,
    QuarantineLimits,
    quarantine_bucket,
)
from broker.logger.store.dialect import Cursor, Dialect
from broker.logger.store.timeline import Timeline
from contract import messages
from contract.messages import VITAL_FIELDS
from contract.timefmt import format_ts

Key = tuple[str, str, str, int]  # (site, room, epoch, seq)
Latest = dict[tuple[str, str], tuple[int, int, str, str, str]]  # (rank, seq, epoch, ts, rx)
LEDGER_COLUMNS = "site, room, epoch, seq, kind, ts, clock_synced, received_at, digest, payload"
VITAL_ROW_COLUMNS = (
    "site, room, epoch, seq, ts, clock_synced, received_at, "
    + ", ".join(VITAL_FIELDS)
    + ", protocol, device_time, alarms, quality, alarm_raw, exc_raw, detail"
)
_CALL_EVENTS = {
    messages.EventKind.CALL_PLACED,
    messages.EventKind.CALL_PRIORITY_RAISED,
    messages.EventKind.CALL_CLAIMED,
    messages.EventKind.CALL_ESCALATED,
    messages.EventKind.CALL_CANCELLED,
}
_ZERO = timedelta(0)
_vital_values = attrgetter(*VITAL_FIELDS)


def fast_ts(value: datetime) -> str:
    """`format_ts` for the contract's datetimes (already UTC), without strftime (hot path)."""
    if value.utcoffset() == _ZERO:
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return format_ts(value)


def _json_list(values: list[str]) -> str:
    return json.dumps(values) if values else "[]"


def _vitals_detail(m: messages.VitalsMessage) -> str | None:
    """The optional fields of a reading (issue 18) as JSON, or None when it had none."""
    detail = m.model_dump(mode="json", include=set(messages.OPTIONAL_VITALS_FIELDS))
    present = {k: v for k, v in detail.items() if v is not None}
    return json.dumps(present, separators=(",", ":"), sort_keys=True) if present else None


def vitals_row(m: messages.VitalsMessage, ts: str, received_at: str) -> tuple[object, ...]:
    """A `vitals` row in `VITAL_ROW_COLUMNS` order."""
    return (
        m.site, m.room, m.epoch, m.seq, ts, int(m.clock_synced), received_at,
        *_vital_values(m), m.protocol, m.device_time, _json_list(m.alarms),
        _json_list(m.quality), m.alarm_raw, m.exc_raw, _vitals_detail(m),
    )  # fmt: skip


def ledger_row(item: Accepted, received_at: str) -> tuple[object, ...]:
    """A `messages` row in `LEDGER_COLUMNS` order (vitals keep no payload: `vitals` has it)."""
    m = item.msg
    is_vitals = isinstance(m, messages.VitalsMessage)
    return (
        m.site, m.room, m.epoch, m.seq, item.leaf, fast_ts(m.ts), int(m.clock_synced),
        received_at, item.digest, None if is_vitals else item.raw.decode("utf-8", "replace"),
    )  # fmt: skip


def _newer(prefix: str) -> str:
    """SQL: the snapshot at (rank, seq) = (?, ?) is newer than the stored `prefix_*` one."""
    return (
        f"({prefix}_rank IS NULL OR {prefix}_rank < ? "
        f"OR ({prefix}_rank = ? AND {prefix}_seq < ?))"
    )


class BaseBatchWriter:
    """The rules of a batch (see the module's docstring); one thread, one batch at a time."""

    def __init__(self, dialect: Dialect, limits: QuarantineLimits | None = None):
        self.d = dialect
        self.limits = limits or QuarantineLimits()
        self.timeline = Timeline(dialect)
        # this batch's quarantine: per bucket [rows, bytes, rate-limited], and the rows
        self._quarantined: dict[tuple[str, str], list[int]] = {}
        self._quarantine_rows: list[tuple[object, ...]] = []
        self._ranks: dict[tuple[str, str, str], int] = {}  # committed epochs only

    def _start_batch(self) -> None:
        self._quarantined = {}
        self._quarantine_rows = []

    def _ensure_room(self, cur: Cursor, site: str, room: str) -> None:
        """Make the room's `room_state` row if it is new (PostgreSQL made them all already)."""
        self.timeline.ensure_room(cur, site, room)

    # -- everything but accepted messages -----------------------------------------------------
    def _write_other(
        self, cur: Cursor, item: Classified, received_at: str, stats: BatchStats
    ) -> None:
        if isinstance(item, Rejected):
            self.quarantine(cur, received_at, item.topic, item.reason, item.raw, item.size)
            stats.quarantined += 1
        elif isinstance(item, Availability):
            self._availability(cur, item, received_at)
        elif isinstance(item, Command):
            cur.execute(
                self.d.sql(
                    "INSERT INTO commands (site, room, name, by, received_at, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
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
        elif isinstance(item, PageReport):  # once: a replay or another logger's copy is one row
            r = item.report
            done = cur.execute(  # sqlite3's and psycopg's execute return the cursor
                self.d.sql(
                    f"INSERT INTO pages ({', '.join(PAGE_INSERT_COLUMNS)}) VALUES "
                    f"({', '.join(['?'] * len(PAGE_INSERT_COLUMNS))}) ON CONFLICT DO NOTHING"
                ),
                (
                    item.site, item.room, item.notifier, r.call_id, r.tier, r.recipient,
                    r.channel, r.attempt, int(r.ok), r.status, r.detail, format_ts(r.at),
                    received_at,
                ),
            )  # fmt: skip
            stats.pages += max(0, int(done.rowcount))
        elif isinstance(item, RateLimited):  # over its room's rate: counted as dropped, not kept
            self._quarantined.setdefault(quarantine_bucket(item.topic), [0, 0, 0])[2] += 1
            stats.rate_limited += 1
        elif isinstance(item, Ignored):
            stats.ignored += 1

    def quarantine(
        self, cur: Cursor, received_at: str, topic: str, reason: str, raw: bytes, size: int
    ) -> None:
        """Keep a message the logger cannot store (inserted with the batch's others)."""
        site, room = quarantine_bucket(topic)
        self._quarantine_rows.append((received_at, topic, reason, size, raw, site, room))
        added = self._quarantined.setdefault((site, room), [0, 0, 0])
        added[0] += 1
        added[1] += len(raw)

    def _availability(self, cur: Cursor, a: Availability, received_at: str) -> None:
        """A change of availability, logged once even when two loggers both see it (the
        conditional UPDATE is re-checked under the row lock)."""
        self._ensure_room(cur, a.site, a.room)
        changed = cur.execute(
            self.d.sql(
                "UPDATE room_state SET availability = ?, availability_at = ? "
                "WHERE site = ? AND room = ? AND availability IS DISTINCT FROM ? RETURNING 1"
            ),
            (a.status, received_at, a.site, a.room, a.status),
        ).fetchone()
        if changed is not None:
            cur.execute(
                self.d.sql(
                    "INSERT INTO availability_log (site, room, status, received_at) "
                    "VALUES (?, ?, ?, ?)"
                ),
                (a.site, a.room, a.status, received_at),
            )

    def _bound_quarantine(self, cur: Cursor, stats: BatchStats) -> None:
        """Insert this batch's quarantine rows (in order), count them per bucket, and trim the
        buckets now over a cap."""
        sql = self.d.sql
        if self._quarantine_rows:
            cur.executemany(
                sql(
                    "INSERT INTO quarantine (received_at, topic, reason, size, raw, site, room) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                self._quarantine_rows,
            )
        for (site, room), (rows, size, limited) in sorted(self._quarantined.items()):
            got = cur.execute(
                sql(
                    "INSERT INTO quarantine_buckets AS b (site, room, row_count, byte_count, "
                    "dropped) VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, room) DO UPDATE SET "
                    "row_count = b.row_count + excluded.row_count, "
                    "byte_count = b.byte_count + excluded.byte_count, "
                    "dropped = b.dropped + excluded.dropped RETURNING row_count, byte_count"
                ),
                (site, room, rows, size, limited),
            ).fetchone()
            assert got is not None
            extra_rows = int(got[0]) - self.limits.max_rows
            extra_bytes = int(got[1]) - self.limits.max_bytes
            if extra_rows <= 0 and extra_bytes <= 0:
                continue
            dropped, freed, last_id = 0, 0, -1
            while dropped < extra_rows or freed < extra_bytes:
                oldest = cur.execute(
                    sql(
                        f"SELECT id, {self.d.byte_length}(raw) FROM quarantine WHERE site = ? "
                        "AND room = ? AND id > ? ORDER BY id LIMIT 1000"
                    ),
                    (site, room, last_id),
                ).fetchall()
                if not oldest:
                    break
                for qid, length in oldest:
                    dropped, freed = dropped + 1, freed + int(length or 0)
                    last_id = int(qid)
                    if dropped >= extra_rows and freed >= extra_bytes:
                        break
            cur.execute(
                sql("DELETE FROM quarantine WHERE site = ? AND room = ? AND id <= ?"),
                (site, room, last_id),
            )
            cur.execute(
                sql(
                    "UPDATE quarantine_buckets SET row_count = row_count - ?, "
                    "byte_count = byte_count - ?, dropped = dropped + ? "
                    "WHERE site = ? AND room = ?"
                ),
                (dropped, freed, dropped, site, room),
            )
            stats.quarantine_dropped += dropped

    # -- accepted messages ----------------------------------------------------------------------
    def _replay(
        self,
        cur: Cursor,
        item: Accepted,
        received_at: str,
        digest: str,
        kind: str,
        stats: BatchStats,
    ) -> None:
        """A message whose key is already stored (as `kind`, with `digest`)."""
        if digest == item.digest:
            stats.duplicates += 1
            return
        self.quarantine(
            cur,
            received_at,
            item.topic,
            f"duplicate seq with different content (seq {item.msg.seq} already stored as {kind})",
            item.raw,
            len(item.raw),
        )
        stats.quarantined += 1

    @staticmethod
    def _collect(
        new: list[tuple[Accepted, str]],
        rank_of: Callable[[messages.Envelope, str], int],
        stats: BatchStats,
    ) -> tuple[list[tuple[object, ...]], list[tuple[messages.Envelope, int, str]], Latest]:
        """The batch's new messages as vitals rows, other messages with their epoch's rank, and
        each room's latest snapshot key; counted in `stats`."""
        vitals: list[tuple[object, ...]] = []
        others: list[tuple[messages.Envelope, int, str]] = []
        latest: Latest = {}
        for item, received_at in new:
            m = item.msg
            rank = rank_of(m, received_at)
            ts = fast_ts(m.ts)
            if isinstance(m, messages.VitalsMessage):
                vitals.append(vitals_row(m, ts, received_at))
            else:
                others.append((m, rank, received_at))
            stats.inserted += 1
            stats.by_kind[item.leaf] = stats.by_kind.get(item.leaf, 0) + 1
            last = latest.get((m.site, m.room))
            if last is None or (rank, m.seq) > (last[0], last[1]):
                latest[(m.site, m.room)] = (rank, m.seq, m.epoch, ts, received_at)
        return vitals, others, latest

    def _advance_rooms(self, cur: Cursor, latest: Latest) -> None:
        """`room_state.last_*` of each room: its newest message, unless a newer one is stored."""
        sql = self.d.sql(
            "UPDATE room_state SET last_rank = ?, last_seq = ?, epoch = ?, last_ts = ?, "
            f"last_received_at = ? WHERE site = ? AND room = ? AND {_newer('last')}"
        )
        for (site, room), (rank, seq, epoch, ts, received_at) in sorted(latest.items()):
            self._ensure_room(cur, site, room)
            cur.execute(sql, (rank, seq, epoch, ts, received_at, site, room, rank, rank, seq))

    def _dispatch(self, cur: Cursor, m: messages.Envelope, rank: int, received_at: str) -> None:
        if isinstance(m, messages.EventMessage):
            self._event(cur, m, received_at)
        elif isinstance(m, messages.StateMessage):
            self._state(cur, m, rank)
        elif isinstance(m, messages.CallMessage):
            self._call_snapshot(cur, m, rank)
        elif isinstance(m, messages.HealthMessage):
            self._snapshot(cur, m, rank, "health", {})

    def _snapshot(
        self, cur: Cursor, m: messages.Envelope, rank: int, kind: str, extra: dict[str, object]
    ) -> None:
        """`room_state`'s retained `kind` snapshot (`kind`, `kind_rank`, `kind_seq` and the
        `extra` columns), unless the stored one is newer."""
        self._ensure_room(cur, m.site, m.room)
        columns = (f"{kind}_rank", f"{kind}_seq", kind, *extra)
        cur.execute(
            self.d.sql(
                f"UPDATE room_state SET {', '.join(f'{c} = ?' for c in columns)} "
                f"WHERE site = ? AND room = ? AND {_newer(kind)}"
            ),
            (rank, m.seq, m.model_dump_json(), *extra.values(), m.site, m.room, rank, rank, m.seq),
        )

    # -- per kind -------------------------------------------------------------------------------
    def _event(self, cur: Cursor, m: messages.EventMessage, received_at: str) -> None:
        cur.execute(
            self.d.sql(
                "INSERT INTO events (site, room, epoch, seq, ts, clock_synced, received_at, "
                "kind, call_id, priority, phase, from_phase, session_id, by, reason, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (site, room, epoch, seq) DO NOTHING"
            ),
            (
                m.site, m.room, m.epoch, m.seq, format_ts(m.ts), int(m.clock_synced),
                received_at, m.kind.value, m.call_id, m.priority, m.phase, m.from_phase,
                m.session_id, m.by, m.reason, json.dumps(m.detail),
            ),
        )  # fmt: skip
        if m.kind in _CALL_EVENTS and m.call_id:
            self.timeline.call_event(cur, m)
        elif m.kind is messages.EventKind.PHASE_CHANGED and m.phase is not None:
            self.timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.ts)
        elif m.kind is messages.EventKind.PHASE_OVERRUN and m.session_id:
            cur.execute(
                self.d.sql(
                    "UPDATE sessions SET overruns = overruns + 1 WHERE site = ? AND room = ? "
                    "AND session_id = ?"
                ),
                (m.site, m.room, m.session_id),
            )

    def _call_snapshot(self, cur: Cursor, m: messages.CallMessage, rank: int) -> None:
        self._snapshot(cur, m, rank, "call", {"call_status": m.status.value})
        self.timeline.call_snapshot(cur, m)

    def _state(self, cur: Cursor, m: messages.StateMessage, rank: int) -> None:
        extra: dict[str, object] = {"phase": m.phase.value, "session_id": m.session_id}
        self._snapshot(cur, m, rank, "state", extra)
        if m.session_id is not None or m.phase is messages.Phase.IDLE:
            self.timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.since)
