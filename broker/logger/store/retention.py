"""Retention: delete what is older than the cutoffs, in short transactions (both engines).

How this works: `run(conn, clinical_cutoff, quarantine_cutoff, batch, max_batches)` spends at
most `max_batches` transactions of at most `batch` rows each, so ingest (same connection, same
thread) is never held up for long. The per-room tables (`vitals` and `events` by `ts`, with
their `messages` ledger rows; `calls` by the first time they carry; `sessions` by
`started_at`) are walked room by room from a cursor that survives between calls: a pass that
runs out of budget resumes at the same room next time, and after the last room it starts again
from the first, so every room is reached however many there are. The tables keyed by id
(`availability_log`, `commands`, `pages` by the clinical cutoff; `quarantine` by its own cutoff, its
bucket counts kept in step) are trimmed oldest first through their `received_at` indexes.
`room_state` and `epochs` are never deleted.

The walk and the SQL are the same for both engines; an engine's subclass
(`sqlite_retention.py`, `postgres_retention.py`) supplies how a transaction is opened and, for
PostgreSQL, one faster way to delete the ledger rows.

Why batched deletes and not PostgreSQL partitions: the idempotency key (site, room, epoch,
seq) must be unique across the whole table, and PostgreSQL only enforces a unique key on a
partitioned table if it includes the partition column (the time), which would let a replay
with another `ts` through. At a clinic group's volume (docs/SCALE.md) a bounded delete pass
every few minutes keeps up and needs no `pg_partman` job.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from broker.logger.store.dialect import Dialect

ROOM_TABLES = ("vitals", "events", "calls", "sessions")
GLOBAL_TABLES = ("availability_log", "commands", "pages", "quarantine")
_CALL_TIME = "COALESCE(placed_at, escalated_at, claimed_at, cancelled_at)"
_ROOM_DELETE = {
    # ts-ordered, with (epoch, seq) returned so their ledger rows go too
    "vitals": (
        "DELETE FROM vitals WHERE site = ? AND room = ? AND (epoch, seq) IN ("
        "SELECT epoch, seq FROM vitals WHERE site = ? AND room = ? AND ts < ? "
        "ORDER BY ts LIMIT ?) RETURNING epoch, seq"
    ),
    "events": (
        "DELETE FROM events WHERE site = ? AND room = ? AND id IN (SELECT id FROM events "
        "WHERE site = ? AND room = ? AND ts < ? ORDER BY ts LIMIT ?) RETURNING epoch, seq"
    ),
    "calls": (
        "DELETE FROM calls WHERE site = ? AND room = ? AND call_id IN (SELECT call_id "
        f"FROM calls WHERE site = ? AND room = ? AND {_CALL_TIME} < ? LIMIT ?) "
        "RETURNING NULL, NULL"
    ),
    "sessions": (
        "DELETE FROM sessions WHERE site = ? AND room = ? AND session_id IN (SELECT "
        "session_id FROM sessions WHERE site = ? AND room = ? AND started_at < ? LIMIT ?) "
        "RETURNING NULL, NULL"
    ),
}


class Retention:
    """Deletes expired rows on the writer's connection, remembering where it stopped."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        # (site, room, table index) where the next pass starts; None: at the first room
        self.cursor: tuple[str, str, int] | None = None

    # -- what an engine supplies ----------------------------------------------------------
    def _transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """A context that runs its body in one transaction and yields a cursor."""
        raise NotImplementedError

    def _delete_ledger(self, cur: Any, site: str, room: str, keys: list[Any]) -> None:
        """Delete the `messages` rows of a room's (epoch, seq) `keys`."""
        cur.executemany(
            self.d.sql(
                "DELETE FROM messages WHERE site = ? AND room = ? AND epoch = ? AND seq = ?"
            ),
            [(site, room, epoch, seq) for (epoch, seq) in keys],
        )

    # -- one transaction --------------------------------------------------------------------
    def _room_batch(
        self, conn: Any, table: str, site: str, room: str, cutoff: str, batch: int
    ) -> int:
        with self._transaction(conn) as cur:
            keys = cur.execute(
                self.d.sql(_ROOM_DELETE[table]), (site, room, site, room, cutoff, batch)
            ).fetchall()
            if table in ("vitals", "events") and keys:
                self._delete_ledger(cur, site, room, keys)
        return len(keys)

    def _global_batch(self, conn: Any, table: str, cutoff: str, batch: int) -> int:
        sql = self.d.sql
        with self._transaction(conn) as cur:
            if table != "quarantine":
                deleted = cur.execute(
                    sql(
                        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                        "WHERE received_at < ? ORDER BY received_at LIMIT ?)"
                    ),
                    (cutoff, batch),
                )
                return int(deleted.rowcount)
            gone = cur.execute(
                sql(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine "
                    "WHERE received_at < ? ORDER BY received_at LIMIT ?) "
                    f"RETURNING site, room, {self.d.byte_length}(raw)"
                ),
                (cutoff, batch),
            ).fetchall()
            freed: dict[tuple[str, str], list[int]] = {}
            for site, room, length in gone:
                got = freed.setdefault((site, room), [0, 0])
                got[0] += 1
                got[1] += int(length or 0)
            if freed:
                cur.executemany(
                    sql(
                        "UPDATE quarantine_buckets SET row_count = row_count - ?, "
                        "byte_count = byte_count - ? WHERE site = ? AND room = ?"
                    ),
                    [(n, b, site, room) for (site, room), (n, b) in sorted(freed.items())],
                )
            return len(gone)

    # -- the walk ---------------------------------------------------------------------------
    def _rooms_from_cursor(self, conn: Any) -> list[tuple[str, str]]:
        """Every room, starting at the cursor's room and wrapping round to the first."""
        rooms = [
            (str(s), str(r))
            for s, r in conn.execute("SELECT site, room FROM room_state ORDER BY site, room")
        ]
        if self.cursor is None:
            return rooms
        at = (self.cursor[0], self.cursor[1])
        return [r for r in rooms if r >= at] + [r for r in rooms if r < at]

    def run(
        self,
        conn: Any,
        clinical_cutoff: str,
        quarantine_cutoff: str,
        batch: int = 500,
        max_batches: int = 20,
        tables: tuple[str, ...] = ROOM_TABLES + GLOBAL_TABLES,
    ) -> dict[str, int]:
        """Delete rows older than the cutoffs (`tables` only); return the rows deleted per
        table. At most `max_batches` transactions; the next call carries on where this one
        stopped (room and table)."""
        deleted = dict.fromkeys(tables, 0)
        budget = max_batches
        for table in (t for t in GLOBAL_TABLES if t in tables):
            cutoff = quarantine_cutoff if table == "quarantine" else clinical_cutoff
            while budget > 0:
                budget -= 1
                n = self._global_batch(conn, table, cutoff, batch)
                deleted[table] += n
                if n < batch:
                    break
        room_tables = [t for t in ROOM_TABLES if t in tables]
        rooms = self._rooms_from_cursor(conn)
        for i, (site, room) in enumerate(rooms):
            first = 0
            if self.cursor is not None and self.cursor[:2] == (site, room):
                first = self.cursor[2]
            for t in range(first, len(room_tables)):
                table = room_tables[t]
                while True:
                    if budget <= 0:
                        self.cursor = (site, room, t)  # resumed here next time
                        return deleted
                    budget -= 1
                    n = self._room_batch(conn, table, site, room, clinical_cutoff, batch)
                    deleted[table] += n
                    if n < batch:
                        break
            # this room is done: the next pass starts at the next one (wrapping round)
            self.cursor = (*rooms[i + 1], 0) if i + 1 < len(rooms) else None
        return deleted
