"""SQLite store, write side: one transaction per batch, idempotent on (site, room, epoch, seq).

How this works: inside the batch's `BEGIN IMMEDIATE` transaction, the `messages` ledger is
asked which of the batch's `(site, room, epoch, seq)` it already holds (one query per room and
epoch). A known key is a replay (`batch.py`'s `_replay`: skipped, or quarantined when its
content differs). New messages go into the ledger and `vitals` with `executemany`
(`ON CONFLICT ... DO NOTHING` as a second guard); everything else a batch does is the shared
rules of `batch.py` (events, snapshots, calls and sessions, `room_state.last_*`, the quarantine
and its caps). Schema: `sqlite_schema.py`. Only `sqlite.py` (the store) uses this module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from broker.logger.ingest import Accepted, Classified
from broker.logger.store.base import BatchStats, QuarantineLimits
from broker.logger.store.batch import (
    LEDGER_COLUMNS,
    VITAL_ROW_COLUMNS,
    BaseBatchWriter,
    Key,
    ledger_row,
)
from broker.logger.store.dialect import SQLITE
from contract import messages


def _insert(table: str, columns: str) -> str:
    marks = ", ".join("?" * len(columns.split(", ")))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        "ON CONFLICT (site, room, epoch, seq) DO NOTHING"
    )


_LEDGER_INSERT = _insert("messages", LEDGER_COLUMNS)
_VITAL_INSERT = _insert("vitals", VITAL_ROW_COLUMNS)


class BatchWriter(BaseBatchWriter):
    """Writes batches on one connection (the store's; one thread; retention is
    `sqlite_retention.py`)."""

    def __init__(self, conn: sqlite3.Connection, limits: QuarantineLimits | None = None):
        super().__init__(SQLITE, limits)
        self.conn = conn
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
        self._start_batch()
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
        new: list[tuple[Accepted, str]] = []
        for item, received_at in accepted:
            m = item.msg
            key = (m.site, m.room, m.epoch, m.seq)
            previous = known.get(key)
            if previous is not None:
                self._replay(cur, item, received_at, *previous, stats)
                continue
            known[key] = (item.digest, item.leaf)
            new.append((item, received_at))

        def rank_of(m: messages.Envelope, received_at: str) -> int:
            return self._rank(cur, m.site, m.room, m.epoch, received_at)

        vitals, others, latest = self._collect(new, rank_of, stats)
        cur.executemany(_LEDGER_INSERT, [ledger_row(item, rx) for item, rx in new])
        cur.executemany(_VITAL_INSERT, vitals)
        for m, rank, received_at in others:
            self._dispatch(cur, m, rank, received_at)
        self._advance_rooms(cur, latest)
