"""The notifier's own SQLite file: every page it owes and every attempt, so a restart (even
after SIGKILL) never pages twice for the same call, tier, nurse and channel.

How this works: a delivery's key is `call_id|tier|recipient|channel`; `plan()` inserts it
(`INSERT OR IGNORE`) before anything is sent, so a call seen again (the retained `call`
after a restart) adds nothing. `due()` hands out pending deliveries whose time has come;
`record()` stores one attempt and moves the delivery on (delivered, retry later with backoff,
or failed after the last attempt). A delivery in flight at a SIGKILL is still pending and is
sent again with the same delivery id (receivers can drop the repeat by its
`X-Roomctl-Delivery` header); a delivered one never is.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL,
    n INTEGER NOT NULL,
    at REAL NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (key, n)
);
"""


@dataclass(frozen=True)
class Delivery:
    key: str
    room: str
    call_id: str
    tier: int
    recipient: str
    channel: str
    body: str
    attempts: int


class DeliveryStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a page recorded survives a power cut
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def plan(self, d: Delivery, now: float) -> bool:
        """Add a delivery unless it is known (any status); True if it is new."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (key, room, call_id, tier, recipient, channel,"
                " body, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.key, d.room, d.call_id, d.tier, d.recipient, d.channel, d.body, now, now),
            )
            return cur.rowcount == 1

    def cancel_call(self, call_id: str, keep_tier_above: int = 99) -> int:
        """A claimed or ended call: its pending pages are not sent (cancelled)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE deliveries SET status = 'cancelled' WHERE call_id = ? AND status ="
                " 'pending' AND tier < ?",
                (call_id, keep_tier_above),
            )
            return cur.rowcount

    def cancel_ended(self, room: str, active: set[str]) -> int:
        """Calls of the room that have ended (answered in the room): nothing more to send."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT call_id FROM deliveries WHERE room = ? AND status = 'pending'",
                (room,),
            ).fetchall()
        return sum(self.cancel_call(r[0]) for r in rows if r[0] not in active)

    def due(self, now: float, exclude: set[str], limit: int = 32) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, room, call_id, tier, recipient, channel, body, attempts FROM"
                " deliveries WHERE status = 'pending' AND next_at <= ? ORDER BY next_at"
                " LIMIT ?",
                (now, limit + len(exclude)),
            ).fetchall()
        return [Delivery(*r) for r in rows if r[0] not in exclude][:limit]

    def next_due(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def record(
        self, d: Delivery, ok: bool, detail: str, now: float, retry_at: float | None
    ) -> str:
        """Store one attempt; return the delivery's new status."""
        n = d.attempts + 1
        status = "delivered" if ok else ("pending" if retry_at is not None else "failed")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO attempts (key, n, at, ok, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (d.key, n, now, int(ok), detail[:500]),
                )
                # a delivery cancelled meanwhile (the call was claimed) stays cancelled
                self._db.execute(
                    "UPDATE deliveries SET attempts = ?, status = CASE WHEN status = 'cancelled'"
                    " AND ? = 'pending' THEN 'cancelled' ELSE ? END, next_at = ? WHERE key = ?",
                    (n, status, status, retry_at if retry_at is not None else now, d.key),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return status

    def deliveries(self, call_id: str | None = None) -> list[dict[str, object]]:
        q = "SELECT key, room, call_id, tier, recipient, channel, status, attempts FROM deliveries"
        args: tuple[object, ...] = ()
        if call_id is not None:
            q += " WHERE call_id = ?"
            args = (call_id,)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created_at, key", args).fetchall()
        cols = ("key", "room", "call_id", "tier", "recipient", "channel", "status", "attempts")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def attempts(self, key: str) -> list[tuple[int, bool, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT n, ok, detail FROM attempts WHERE key = ? ORDER BY n", (key,)
            ).fetchall()
        return [(int(n), bool(ok), str(detail)) for n, ok, detail in rows]
