"""SQLite store, retention: delete what is older than the cutoffs, in short transactions.

How this works: `Retention.run(clinical_cutoff, quarantine_cutoff, batch, max_batches)` spends
at most `max_batches` transactions of at most `batch` rows each, so ingest (same connection,
same thread) is never held up for long. The per-room tables (`vitals` and `events` by `ts`,
with their `messages` ledger rows; `calls` by the first time they carry; `sessions` by
`started_at`) are walked room by room from a cursor that survives between calls: a pass that
runs out of budget resumes at the same room next time, and after the last room it starts
again from the first, so every room is reached however many there are. The tables keyed by
id (`availability_log`, `commands`, `pages` by the clinical cutoff; `quarantine` by its own
cutoff, its bucket counts kept in step) are trimmed oldest first through their `received_at`
indexes. `room_state` and `epochs` are never deleted. Only `sqlite.py` (the store) uses this module.
"""

from __future__ import annotations

import sqlite3

_ROOM_TABLES = ("vitals", "events", "calls", "sessions")
_CALL_TIME = "COALESCE(placed_at, escalated_at, claimed_at, cancelled_at)"
_ROOM_DELETE = {
    # ts-ordered, with (epoch, seq) returned so their ledger rows go too
    "vitals": (
        "DELETE FROM vitals WHERE site = ? AND room = ? AND (epoch, seq) IN ("
        "SELECT epoch, seq FROM vitals WHERE site = ? AND room = ? AND ts < ? "
        "ORDER BY ts LIMIT ?) RETURNING epoch, seq"
    ),
    "events": (
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE site = ? AND room = ? "
        "AND ts < ? ORDER BY ts LIMIT ?) RETURNING epoch, seq"
    ),
    "calls": (
        "DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls WHERE site = ? AND room = ? "
        f"AND {_CALL_TIME} < ? LIMIT ?) RETURNING NULL, NULL"
    ),
    "sessions": (
        "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE site = ? "
        "AND room = ? AND started_at < ? LIMIT ?) RETURNING NULL, NULL"
    ),
}
_GLOBAL_TABLES = ("availability_log", "commands", "pages", "quarantine")


class Retention:
    """Deletes expired rows on one connection (the writer's), remembering where it stopped."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        # (site, room, table index) where the next pass starts; None: at the first room
        self.cursor: tuple[str, str, int] | None = None

    def _room_batch(
        self, table: str, site: str, room: str, cutoff: str, batch: int
    ) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if table == "vitals":
                args: tuple[object, ...] = (site, room, site, room, cutoff, batch)
            else:
                args = (site, room, cutoff, batch)
            keys = self.conn.execute(_ROOM_DELETE[table], args).fetchall()
            if table in ("vitals", "events"):
                self.conn.executemany(
                    "DELETE FROM messages WHERE site = ? AND room = ? AND epoch = ? AND seq = ?",
                    [(site, room, epoch, seq) for (epoch, seq) in keys],
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return len(keys)

    def _global_batch(self, table: str, cutoff: str, batch: int) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if table == "quarantine":
                gone = self.conn.execute(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine "
                    "WHERE received_at < ? ORDER BY received_at LIMIT ?) "
                    "RETURNING site, room, length(raw)",
                    (cutoff, batch),
                ).fetchall()
                freed: dict[tuple[str, str], list[int]] = {}
                for site, room, length in gone:
                    got = freed.setdefault((site, room), [0, 0])
                    got[0] += 1
                    got[1] += int(length or 0)
                self.conn.executemany(
                    "UPDATE quarantine_buckets SET row_count = row_count - ?, "
                    "byte_count = byte_count - ? WHERE site = ? AND room = ?",
                    [(n, b, site, room) for (site, room), (n, b) in freed.items()],
                )
                count = len(gone)
            else:
                count = self.conn.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                    "WHERE received_at < ? ORDER BY received_at LIMIT ?)",
                    (cutoff, batch),
                ).rowcount
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return int(count)

    def _rooms_from_cursor(self) -> list[tuple[str, str]]:
        """Every room, starting at the cursor's room and wrapping round to the first."""
        rooms = [
            (str(s), str(r))
            for s, r in self.conn.execute("SELECT site, room FROM room_state ORDER BY site, room")
        ]
        if self.cursor is None:
            return rooms
        at = (self.cursor[0], self.cursor[1])
        return [r for r in rooms if r >= at] + [r for r in rooms if r < at]

    def run(
        self,
        clinical_cutoff: str,
        quarantine_cutoff: str,
        batch: int = 500,
        max_batches: int = 20,
        tables: tuple[str, ...] = _ROOM_TABLES + _GLOBAL_TABLES,
    ) -> dict[str, int]:
        """Delete rows older than the cutoffs (`tables` only); return the rows deleted per
        table. At most `max_batches` transactions; the next call carries on where this one
        stopped (room and table)."""
        deleted = dict.fromkeys(tables, 0)
        budget = max_batches
        for table in (t for t in _GLOBAL_TABLES if t in tables):
            cutoff = quarantine_cutoff if table == "quarantine" else clinical_cutoff
            while budget > 0:
                budget -= 1
                n = self._global_batch(table, cutoff, batch)
                deleted[table] += n
                if n < batch:
                    break
        room_tables = [t for t in _ROOM_TABLES if t in tables]
        rooms = self._rooms_from_cursor()
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
                    n = self._room_batch(table, site, room, clinical_cutoff, batch)
                    deleted[table] += n
                    if n < batch:
                        break
            # this room is done: the next pass starts at the next one (wrapping round)
            self.cursor = (*rooms[i + 1], 0) if i + 1 < len(rooms) else None
        return deleted
