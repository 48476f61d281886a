"""PostgreSQL store, write side: one transaction per batch, idempotent on (site, room, epoch, seq),
safe with several loggers writing the same messages at once.

How this works, inside the batch's transaction:
1. Every room the batch touches gets its `room_state` row (inserted if new) and that row is
   locked, rooms in (site, room) order. A room's rows (ledger, vitals, events, calls,
   sessions) are only written under its lock, so two loggers that received the same messages
   take turns per room instead of deadlocking, and the second finds the first one's rows.
2. The ledger rows are COPYed into a temporary staging table, then
   `INSERT INTO messages SELECT ... ON CONFLICT DO NOTHING RETURNING` the keys this batch
   really inserted. A key not inserted is already stored: with the same digest it is a replay
   (QoS 1 redelivery, outbox resend, or the other logger's copy); with another digest it goes
   to quarantine as "duplicate seq with different content", as in SQLite.
3. The new vitals are COPYed into a second staging table and moved with
   `INSERT ... ON CONFLICT DO NOTHING`; events, snapshots, calls and sessions are written one
   by one (they are few) with the same rules as SQLite (`postgres_timeline.py`).
4. The quarantine buckets the batch added to are counted and trimmed (`QuarantineLimits`),
   buckets in order.
The logger acknowledges the batch to the broker only after this transaction has committed.
Staging tables are `ON COMMIT DELETE ROWS` temporaries of the connection. Only
`postgres.py` (the store) uses this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import psycopg

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
from broker.logger.store.dialect import POSTGRES
from broker.logger.store.sqlite_batch import _fast_ts, _json_list, _vitals_detail
from broker.logger.store.timeline import Timeline
from contract import messages
from contract.messages import VITAL_FIELDS
from contract.timefmt import format_ts

Cursor = psycopg.Cursor[Any]
Conn = psycopg.Connection[Any]
Key = tuple[str, str, str, int]  # (site, room, epoch, seq)

_LEDGER_COLUMNS = "site, room, epoch, seq, kind, ts, clock_synced, received_at, digest, payload"
_VITAL_COLUMNS = (
    "site, room, epoch, seq, ts, clock_synced, received_at, "
    + ", ".join(VITAL_FIELDS)
    + ", protocol, device_time, alarms, quality, alarm_raw, exc_raw, detail"
)
STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_messages "
    "(LIKE messages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_vitals "
    "(LIKE vitals INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
)
timeline = Timeline(POSTGRES)
_CALL_EVENTS = {
    messages.EventKind.CALL_PLACED,
    messages.EventKind.CALL_PRIORITY_RAISED,
    messages.EventKind.CALL_CLAIMED,
    messages.EventKind.CALL_ESCALATED,
    messages.EventKind.CALL_CANCELLED,
}
_vital_values = attrgetter(*VITAL_FIELDS)


def _newer(prefix: str) -> str:
    """SQL: the snapshot at (rank, seq) = (%s, %s) is newer than the stored `prefix_*` one."""
    return (
        f"({prefix}_rank IS NULL OR {prefix}_rank < %s "
        f"OR ({prefix}_rank = %s AND {prefix}_seq < %s))"
    )


class PgBatchWriter:
    """Writes batches on one connection (the store's; one thread)."""

    def __init__(self, limits: QuarantineLimits | None = None):
        self.limits = limits or QuarantineLimits()
        self._quarantined: dict[tuple[str, str], list[int]] = {}
        self._quarantine_rows: list[tuple[object, ...]] = []  # inserted together (pipelined)
        self._ranks: dict[tuple[str, str, str], int] = {}  # committed epochs only

    # -- one batch ------------------------------------------------------------------------
    def write_batch(self, conn: Conn, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        """Write `(classified, received_at)` items in one transaction; return what happened."""
        stats = BatchStats()
        batch = list(items)
        self._quarantined = {}
        self._quarantine_rows = []
        pending: dict[tuple[str, str, str], int] = {}
        with conn.transaction(), conn.cursor() as cur:
            self._lock_rooms(cur, batch)
            accepted: list[tuple[Accepted, str]] = []
            for item, received_at in batch:
                if isinstance(item, Accepted):
                    accepted.append((item, received_at))
                else:
                    self._write_other(cur, item, received_at, stats)
            if accepted:
                self._write_accepted(cur, accepted, stats, pending)
            self._bound_quarantine(cur, stats)
        self._ranks.update(pending)  # a rolled-back epoch row is not remembered
        return stats

    @staticmethod
    def _lock_rooms(cur: Cursor, batch: list[tuple[Classified, str]]) -> None:
        rooms = sorted(
            {
                (i.msg.site, i.msg.room) if isinstance(i, Accepted) else (i.site, i.room)
                for i, _ in batch
                if isinstance(i, Accepted | Availability)
            }
        )
        if not rooms:
            return
        sites, names = [r[0] for r in rooms], [r[1] for r in rooms]
        cur.execute(
            "INSERT INTO room_state (site, room) SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ORDER BY 1, 2 ON CONFLICT (site, room) DO NOTHING",
            (sites, names),
        )
        cur.execute(
            "SELECT 1 FROM room_state WHERE (site, room) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY site, room FOR UPDATE",
            (sites, names),
        )

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
                "INSERT INTO commands (site, room, name, by, received_at, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
        self, cur: Cursor, received_at: str, topic: str, reason: str, raw: bytes, size: int
    ) -> None:
        site, room = quarantine_bucket(topic)
        self._quarantine_rows.append((received_at, topic, reason, size, raw, site, room))
        added = self._quarantined.setdefault((site, room), [0, 0, 0])
        added[0] += 1
        added[1] += len(raw)

    def _bound_quarantine(self, cur: Cursor, stats: BatchStats) -> None:
        """Insert this batch's quarantine rows (in order), count them per bucket, and trim the
        buckets now over a cap."""
        if self._quarantine_rows:
            cur.executemany(
                "INSERT INTO quarantine (received_at, topic, reason, size, raw, site, room) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                self._quarantine_rows,
            )
        for (site, room), (rows, size, limited) in sorted(self._quarantined.items()):
            got = cur.execute(
                "INSERT INTO quarantine_buckets AS b (site, room, row_count, byte_count, dropped) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site, room) DO UPDATE SET "
                "row_count = b.row_count + excluded.row_count, "
                "byte_count = b.byte_count + excluded.byte_count, "
                "dropped = b.dropped + excluded.dropped RETURNING row_count, byte_count",
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
                    "SELECT id, octet_length(raw) FROM quarantine WHERE site = %s AND room = %s "
                    "AND id > %s ORDER BY id LIMIT 1000",
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
                "DELETE FROM quarantine WHERE site = %s AND room = %s AND id <= %s",
                (site, room, last_id),
            )
            cur.execute(
                "UPDATE quarantine_buckets SET row_count = row_count - %s, "
                "byte_count = byte_count - %s, dropped = dropped + %s "
                "WHERE site = %s AND room = %s",
                (dropped, freed, dropped, site, room),
            )
            stats.quarantine_dropped += dropped

    # -- accepted messages ------------------------------------------------------------------
    def _epoch_ranks(
        self,
        cur: Cursor,
        fresh: list[tuple[Accepted, str]],
        pending: dict[tuple[str, str, str], int],
    ) -> dict[tuple[str, str, str], int]:
        """The rank (order first seen) of every epoch of the batch's new messages."""
        first_seen: dict[tuple[str, str, str], str] = {}
        for item, received_at in fresh:
            m = item.msg
            first_seen.setdefault((m.site, m.room, m.epoch), received_at)
        ranks = {k: self._ranks[k] for k in first_seen if k in self._ranks}
        missing = sorted(k for k in first_seen if k not in ranks)
        if missing:
            columns = [list(col) for col in zip(*missing, strict=True)]
            cur.execute(
                "INSERT INTO epochs (site, room, epoch, first_seen) SELECT * FROM "
                "unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ORDER BY 1, 2, 3 "
                "ON CONFLICT (site, room, epoch) DO NOTHING",
                (*columns, [first_seen[k] for k in missing]),
            )
            for site, room, epoch, rank in cur.execute(
                "SELECT site, room, epoch, id FROM epochs WHERE (site, room, epoch) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
                columns,
            ):
                key = (str(site), str(room), str(epoch))
                ranks[key] = pending[key] = int(rank)
        return ranks

    def _write_accepted(
        self,
        cur: Cursor,
        accepted: list[tuple[Accepted, str]],
        stats: BatchStats,
        pending: dict[tuple[str, str, str], int],
    ) -> None:
        # the first copy of each key in the batch; later copies are compared with it
        first: dict[Key, Accepted] = {}
        fresh: list[tuple[Accepted, str]] = []
        for item, received_at in accepted:
            m = item.msg
            key = (m.site, m.room, m.epoch, m.seq)
            seen = first.get(key)
            if seen is None:
                first[key] = item
                fresh.append((item, received_at))
            else:
                self._replay(cur, item, received_at, seen.digest, seen.leaf, stats)
        fresh.sort(key=lambda x: (x[0].msg.site, x[0].msg.room, x[0].msg.epoch, x[0].msg.seq))
        with cur.copy(f"COPY stage_messages ({_LEDGER_COLUMNS}) FROM STDIN") as copy:
            for item, received_at in fresh:
                m = item.msg
                is_vitals = isinstance(m, messages.VitalsMessage)
                copy.write_row(
                    (
                        m.site, m.room, m.epoch, m.seq, item.leaf, _fast_ts(m.ts),
                        int(m.clock_synced), received_at, item.digest,
                        None if is_vitals else item.raw.decode("utf-8", "replace"),
                    )
                )  # fmt: skip
        inserted = {
            (str(s), str(r), str(e), int(q))
            for s, r, e, q in cur.execute(
                f"INSERT INTO messages ({_LEDGER_COLUMNS}) SELECT {_LEDGER_COLUMNS} "
                "FROM stage_messages ORDER BY site, room, epoch, seq "
                "ON CONFLICT (site, room, epoch, seq) DO NOTHING RETURNING site, room, epoch, seq"
            ).fetchall()
        }
        if len(inserted) < len(fresh):
            stored: dict[Key, tuple[str, str]] = {}
            for s, r, e, q, digest, kind in cur.execute(
                "SELECT m.site, m.room, m.epoch, m.seq, m.digest, m.kind FROM messages m "
                "JOIN stage_messages s USING (site, room, epoch, seq)"
            ):
                stored[(str(s), str(r), str(e), int(q))] = (str(digest), str(kind))
            for item, received_at in fresh:
                m = item.msg
                key = (m.site, m.room, m.epoch, m.seq)
                if key not in inserted:
                    digest, kind = stored[key]
                    self._replay(cur, item, received_at, digest, kind, stats)
        new = [(i, rx) for i, rx in fresh if (i.msg.site, i.msg.room, i.msg.epoch, i.msg.seq)
               in inserted]  # fmt: skip
        if not new:
            return
        ranks = self._epoch_ranks(cur, new, pending)
        latest: dict[tuple[str, str], tuple[int, int, str, str, str]] = {}
        others: list[tuple[messages.Envelope, int, str]] = []
        vitals: list[tuple[object, ...]] = []
        for item, received_at in new:
            m = item.msg
            rank = ranks[(m.site, m.room, m.epoch)]
            ts = _fast_ts(m.ts)
            if isinstance(m, messages.VitalsMessage):
                vitals.append(self._vitals_row(m, ts, received_at))
            else:
                others.append((m, rank, received_at))
            stats.inserted += 1
            stats.by_kind[item.leaf] = stats.by_kind.get(item.leaf, 0) + 1
            last = latest.get((m.site, m.room))
            if last is None or (rank, m.seq) > (last[0], last[1]):
                latest[(m.site, m.room)] = (rank, m.seq, m.epoch, ts, received_at)
        if vitals:
            with cur.copy(f"COPY stage_vitals ({_VITAL_COLUMNS}) FROM STDIN") as copy:
                for row in vitals:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO vitals ({_VITAL_COLUMNS}) SELECT {_VITAL_COLUMNS} FROM stage_vitals "
                "ORDER BY site, room, epoch, seq ON CONFLICT (site, room, epoch, seq) DO NOTHING"
            )
        for m, rank, received_at in others:
            self._dispatch(cur, m, rank, received_at)
        for (site, room), (rank, seq, epoch, ts, received_at) in sorted(latest.items()):
            cur.execute(
                "UPDATE room_state SET last_rank = %s, last_seq = %s, epoch = %s, last_ts = %s, "
                f"last_received_at = %s WHERE site = %s AND room = %s AND {_newer('last')}",
                (rank, seq, epoch, ts, received_at, site, room, rank, rank, seq),
            )

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

    def _dispatch(self, cur: Cursor, m: messages.Envelope, rank: int, received_at: str) -> None:
        if isinstance(m, messages.EventMessage):
            self._event(cur, m, received_at)
        elif isinstance(m, messages.StateMessage):
            self._state(cur, m, rank)
        elif isinstance(m, messages.CallMessage):
            cur.execute(
                "UPDATE room_state SET call_rank = %s, call_seq = %s, call = %s, "
                f"call_status = %s WHERE site = %s AND room = %s AND {_newer('call')}",
                (
                    rank, m.seq, m.model_dump_json(), m.status.value, m.site, m.room,
                    rank, rank, m.seq,
                ),
            )  # fmt: skip
            timeline.call_snapshot(cur, m)
        elif isinstance(m, messages.HealthMessage):
            cur.execute(
                "UPDATE room_state SET health_rank = %s, health_seq = %s, health = %s "
                f"WHERE site = %s AND room = %s AND {_newer('health')}",
                (rank, m.seq, m.model_dump_json(), m.site, m.room, rank, rank, m.seq),
            )

    # -- per kind -------------------------------------------------------------------------
    @staticmethod
    def _vitals_row(m: messages.VitalsMessage, ts: str, received_at: str) -> tuple[object, ...]:
        return (
            m.site, m.room, m.epoch, m.seq, ts, int(m.clock_synced), received_at,
            *_vital_values(m), m.protocol, m.device_time, _json_list(m.alarms),
            _json_list(m.quality), m.alarm_raw, m.exc_raw, _vitals_detail(m),
        )  # fmt: skip

    def _event(self, cur: Cursor, m: messages.EventMessage, received_at: str) -> None:
        cur.execute(
            "INSERT INTO events (site, room, epoch, seq, ts, clock_synced, received_at, kind, "
            "call_id, priority, phase, from_phase, session_id, by, reason, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (site, room, epoch, seq) DO NOTHING",
            (
                m.site, m.room, m.epoch, m.seq, format_ts(m.ts), int(m.clock_synced),
                received_at, m.kind.value, m.call_id, m.priority, m.phase, m.from_phase,
                m.session_id, m.by, m.reason, json.dumps(m.detail),
            ),
        )  # fmt: skip
        if m.kind in _CALL_EVENTS and m.call_id:
            timeline.call_event(cur, m)
        elif m.kind is messages.EventKind.PHASE_CHANGED and m.phase is not None:
            timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.ts)
        elif m.kind is messages.EventKind.PHASE_OVERRUN and m.session_id:
            cur.execute(
                "UPDATE sessions SET overruns = overruns + 1 WHERE site = %s AND room = %s "
                "AND session_id = %s",
                (m.site, m.room, m.session_id),
            )

    def _state(self, cur: Cursor, m: messages.StateMessage, rank: int) -> None:
        cur.execute(
            "UPDATE room_state SET state_rank = %s, state_seq = %s, state = %s, phase = %s, "
            f"session_id = %s WHERE site = %s AND room = %s AND {_newer('state')}",
            (
                rank, m.seq, m.model_dump_json(), m.phase.value, m.session_id,
                m.site, m.room, rank, rank, m.seq,
            ),
        )  # fmt: skip
        if m.session_id is not None or m.phase is messages.Phase.IDLE:
            timeline.phase_change(cur, m.site, m.room, m.seq, m.session_id, m.phase, m.since)

    @staticmethod
    def _availability(cur: Cursor, a: Availability, received_at: str) -> None:
        """A change of availability, logged once even when two loggers both see it (the
        conditional UPDATE is re-checked under the row lock)."""
        changed = cur.execute(
            "UPDATE room_state SET availability = %s, availability_at = %s "
            "WHERE site = %s AND room = %s AND availability IS DISTINCT FROM %s RETURNING 1",
            (a.status, received_at, a.site, a.room, a.status),
        ).fetchone()
        if changed is not None:
            cur.execute(
                "INSERT INTO availability_log (site, room, status, received_at) "
                "VALUES (%s, %s, %s, %s)",
                (a.site, a.room, a.status, received_at),
            )
