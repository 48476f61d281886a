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
   by one (they are few) by the rules shared with SQLite (`batch.py`, `timeline.py`).
4. The quarantine buckets the batch added to are counted and trimmed (`QuarantineLimits`),
   buckets in order (`batch.py`).
The logger acknowledges the batch to the broker only after this transaction has committed.
Staging tables are `ON COMMIT DELETE ROWS` temporaries of the connection. Only
`postgres.py` (the store) uses this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from broker.logger.ingest import Accepted, Availability, Classified
from broker.logger.store.base import BatchStats, QuarantineLimits
from broker.logger.store.batch import (
    LEDGER_COLUMNS,
    VITAL_ROW_COLUMNS,
    BaseBatchWriter,
    Key,
    ledger_row,
)
from broker.logger.store.dialect import POSTGRES, Cursor

Conn = psycopg.Connection[Any]
PgCursor = psycopg.Cursor[Any]

STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_messages "
    "(LIKE messages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS stage_vitals "
    "(LIKE vitals INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
)


class PgBatchWriter(BaseBatchWriter):
    """Writes batches on one connection (the store's; one thread)."""

    def __init__(self, limits: QuarantineLimits | None = None):
        super().__init__(POSTGRES, limits)

    def _ensure_room(self, cur: Cursor, site: str, room: str) -> None:
        """Nothing: `_lock_rooms` made (and locked) every room of the batch already."""

    # -- one batch ------------------------------------------------------------------------
    def write_batch(self, conn: Conn, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        """Write `(classified, received_at)` items in one transaction; return what happened."""
        stats = BatchStats()
        batch = list(items)
        self._start_batch()
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
    def _lock_rooms(cur: PgCursor, batch: list[tuple[Classified, str]]) -> None:
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

    # -- accepted messages ------------------------------------------------------------------
    def _epoch_ranks(
        self,
        cur: PgCursor,
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
        cur: PgCursor,
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
        with cur.copy(f"COPY stage_messages ({LEDGER_COLUMNS}) FROM STDIN") as copy:
            for item, received_at in fresh:
                copy.write_row(ledger_row(item, received_at))
        inserted = {
            (str(s), str(r), str(e), int(q))
            for s, r, e, q in cur.execute(
                f"INSERT INTO messages ({LEDGER_COLUMNS}) SELECT {LEDGER_COLUMNS} "
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
        vitals, others, latest = self._collect(
            new, lambda m, _: ranks[(m.site, m.room, m.epoch)], stats
        )
        if vitals:
            with cur.copy(f"COPY stage_vitals ({VITAL_ROW_COLUMNS}) FROM STDIN") as copy:
                for row in vitals:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO vitals ({VITAL_ROW_COLUMNS}) SELECT {VITAL_ROW_COLUMNS} "
                "FROM stage_vitals ORDER BY site, room, epoch, seq "
                "ON CONFLICT (site, room, epoch, seq) DO NOTHING"
            )
        for m, rank, received_at in others:
            self._dispatch(cur, m, rank, received_at)
        self._advance_rooms(cur, latest)
