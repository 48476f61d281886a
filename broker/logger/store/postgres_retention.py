"""PostgreSQL store, retention: batched deletes in short transactions, as in SQLite.

The same walk as `sqlite_retention.py` (keep the two in step): at most `max_batches`
transactions of at most `batch` rows per call; the per-room tables (`vitals`, `events` with
their `messages` ledger rows, `calls`, `sessions`) room by room from a cursor that survives
between calls; `availability_log`, `commands`, `pages` and `quarantine` (bucket counts kept in step)
oldest first through their `received_at` indexes. `room_state` and `epochs` are kept.

Why batched deletes and not partitions: the idempotency key (site, room, epoch, seq) must be
unique across the whole table, and PostgreSQL only enforces a unique key on a partitioned
table if it includes the partition column (the time), which would let a replay with another
`ts` through. At a clinic group's volume (docs/SCALE.md) a bounded delete pass every few
minutes keeps up with a day's rows in seconds, and needs no `pg_partman` job.
Only `postgres.py` (the store) uses this module.
"""

from __future__ import annotations

from typing import Any

import psycopg

from broker.logger.store.sqlite_retention import _GLOBAL_TABLES, _ROOM_TABLES

Conn = psycopg.Connection[Any]
_CALL_TIME = "COALESCE(placed_at, escalated_at, claimed_at, cancelled_at)"
_ROOM_DELETE = {
    "vitals": (
        "DELETE FROM vitals WHERE site = %s AND room = %s AND (epoch, seq) IN ("
        "SELECT epoch, seq FROM vitals WHERE site = %s AND room = %s AND ts < %s "
        "ORDER BY ts LIMIT %s) RETURNING epoch, seq"
    ),
    "events": (
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE site = %s AND room = %s "
        "AND ts < %s ORDER BY ts LIMIT %s) RETURNING epoch, seq"
    ),
    "calls": (
        "DELETE FROM calls WHERE site = %s AND room = %s AND call_id IN (SELECT call_id "
        f"FROM calls WHERE site = %s AND room = %s AND {_CALL_TIME} < %s LIMIT %s) "
        "RETURNING NULL, NULL"
    ),
    "sessions": (
        "DELETE FROM sessions WHERE site = %s AND room = %s AND session_id IN (SELECT "
        "session_id FROM sessions WHERE site = %s AND room = %s AND started_at < %s LIMIT %s) "
        "RETURNING NULL, NULL"
    ),
}


class PgRetention:
    """Deletes expired rows on the writer's connection, remembering where it stopped."""

    def __init__(self) -> None:
        # (site, room, table index) where the next pass starts; None: at the first room
        self.cursor: tuple[str, str, int] | None = None

    @staticmethod
    def _room_batch(conn: Conn, table: str, site: str, room: str, cutoff: str, batch: int) -> int:
        if table == "events":
            args: tuple[object, ...] = (site, room, cutoff, batch)
        else:
            args = (site, room, site, room, cutoff, batch)
        with conn.transaction():
            keys = conn.execute(_ROOM_DELETE[table], args).fetchall()
            if table in ("vitals", "events") and keys:
                conn.execute(
                    "DELETE FROM messages WHERE site = %s AND room = %s AND (epoch, seq) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                    (site, room, [k[0] for k in keys], [k[1] for k in keys]),
                )
        return len(keys)

    @staticmethod
    def _global_batch(conn: Conn, table: str, cutoff: str, batch: int) -> int:
        with conn.transaction():
            if table == "quarantine":
                gone = conn.execute(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine "
                    "WHERE received_at < %s ORDER BY received_at LIMIT %s) "
                    "RETURNING site, room, octet_length(raw)",
                    (cutoff, batch),
                ).fetchall()
                freed: dict[tuple[str, str], list[int]] = {}
                for site, room, length in gone:
                    got = freed.setdefault((site, room), [0, 0])
                    got[0] += 1
                    got[1] += int(length or 0)
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE quarantine_buckets SET row_count = row_count - %s, "
                        "byte_count = byte_count - %s WHERE site = %s AND room = %s",
                        [(n, b, site, room) for (site, room), (n, b) in sorted(freed.items())],
                    )
                return len(gone)
            cur = conn.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                "WHERE received_at < %s ORDER BY received_at LIMIT %s)",
                (cutoff, batch),
            )
            return int(cur.rowcount)

    def _rooms_from_cursor(self, conn: Conn) -> list[tuple[str, str]]:
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
        conn: Conn,
        clinical_cutoff: str,
        quarantine_cutoff: str,
        batch: int = 500,
        max_batches: int = 20,
        tables: tuple[str, ...] = _ROOM_TABLES + _GLOBAL_TABLES,
    ) -> dict[str, int]:
        """Delete rows older than the cutoffs (`tables` only); return the rows deleted per
        table. At most `max_batches` transactions; the next call resumes where this one
        stopped (room and table)."""
        deleted = dict.fromkeys(tables, 0)
        budget = max_batches
        for table in (t for t in _GLOBAL_TABLES if t in tables):
            cutoff = quarantine_cutoff if table == "quarantine" else clinical_cutoff
            while budget > 0:
                budget -= 1
                n = self._global_batch(conn, table, cutoff, batch)
                deleted[table] += n
                if n < batch:
                    break
        room_tables = [t for t in _ROOM_TABLES if t in tables]
        rooms = self._rooms_from_cursor(conn)
        for i, (site, room) in enumerate(rooms):
            first = 0
            if self.cursor is not None and self.cursor[:2] == (site, room):
                first = self.cursor[2]
            for t in range(first, len(room_tables)):
                table = room_tables[t]
                while True:
                    if budget <= 0:
                        self.cursor = (site, room, t)
                        return deleted
                    budget -= 1
                    n = self._room_batch(conn, table, site, room, clinical_cutoff, batch)
                    deleted[table] += n
                    if n < batch:
                        break
            self.cursor = (*rooms[i + 1], 0) if i + 1 < len(rooms) else None
        return deleted
