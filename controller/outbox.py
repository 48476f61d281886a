"""Store-and-forward outbox: SQLite in WAL mode, fsync on every commit.

How this works:
- `enqueue` allocates the next `seq` and stores the message in one transaction, so `seq`
  is strictly increasing across restarts and a row exists before anyone sees the message.
- The MQTT link hands rows to paho in `seq` order (a bounded window) and calls `ack(seq)`
  only on PUBACK. After a restart every row still pending is replayed in order (the
  logger dedupes on `(site, room, epoch, seq)`, so a resend is harmless).
- An acknowledged row is kept for a replay window (longer than the broker's autosave
  interval) and resent on every reconnect: Mosquitto PUBACKs before it saves, so a broker
  killed with SIGKILL forgets what it took in since its last save. Then it is purged.
- The same database keeps the room's persistent state (phase, call, alerts) in `room_state`,
  so a SIGKILL loses neither the call nor the phase.

Size cap (the policy `docs/CONTRACT.md` repeats): when the table holds `max_rows` rows,
calls, events, state and health are still always stored (never dropped); a new vitals
reading first thins the oldest stored vitals, deleting every second one of the oldest
`max_rows // 10` vitals rows (the oldest stretch keeps half its time resolution). If no
vitals are left to thin, the new vitals reading itself is not stored. Every vitals row
removed or refused is counted in `vitals_thinned`, which is persisted and published in
`health`. A full disk is handled the same way: thin vitals and retry; a vitals reading
that still cannot be stored is counted, and a call/event that cannot be stored raises
`OutboxFull` so the daemon can keep it in memory and retry.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.messages import new_epoch

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_kind_seq ON outbox (kind, seq);
CREATE INDEX IF NOT EXISTS outbox_acked ON outbox (acked_at);
CREATE TABLE IF NOT EXISTS room_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


BALLAST_BYTES = 4 * 1024 * 1024
# Messages the broker would refuse (see `Outbox.refuse`): what is kept of them, for diagnosis.
REFUSED_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_refused (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    size INTEGER NOT NULL,
    head BLOB NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL
)
"""
REFUSED_KEEP = 100
REFUSED_HEAD_BYTES = 4096


class OutboxFull(Exception):
    """A message that must not be dropped could not be stored (disk full)."""


@dataclass(frozen=True)
class OutboxItem:
    """A message to store: `build(seq)` makes its payload once its seq is known."""

    kind: str
    topic: str
    build: Callable[[int], bytes]
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    kind: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


def _is_disk_full(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "full" in text or getattr(exc, "sqlite_errorcode", None) == 13  # SQLITE_FULL


class Outbox:
    """The room's durable queue of messages waiting for a PUBACK. Single-threaded use."""

    def __init__(
        self,
        path: Path | str,
        max_rows: int = 200_000,
        clock: Callable[[], float] = time.time,
        ballast_bytes: int = BALLAST_BYTES,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self._clock = clock
        self.ballast_bytes = ballast_bytes
        self._ballast = self.path.with_name(self.path.name + ".ballast")
        self.disk_full = False  # set on SQLITE_FULL, cleared when the ballast is back
        self._thinned_dirty = False
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()
        self._db.executescript(SCHEMA)
        self._last_seq = int(self._meta("last_seq", "0"))
        # The numbering epoch: made once, when this store is first opened (a new store, a
        # re-imaged card, a replacement Pi's seeded store), and kept for its whole life.
        self.epoch = self._meta("epoch", "")
        if not self.epoch:
            self.epoch = new_epoch()
            self._set_meta("epoch", self.epoch)
        self.vitals_thinned = int(self._meta("vitals_thinned", "0"))
        self._depth = int(
            self._db.execute("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
        )
        self.ensure_ballast()

    # -- disk space ----------------------------------------------------------------------

    def ensure_ballast(self) -> bool:
        """Keep a reserve file beside the database while there is room for it.

        On SQLITE_FULL the reserve is deleted, which gives SQLite room to thin vitals and
        store the calls and events that must not be lost. Called at start and periodically;
        returns True once the reserve is in place (the disk is no longer full).
        """
        if self.ballast_bytes <= 0 or self._ballast.exists():
            self.disk_full = False
            return True
        tmp = self._ballast.with_name(self._ballast.name + ".tmp")
        try:
            free = os.statvfs(self.path.parent)
            if free.f_bavail * free.f_frsize < 2 * self.ballast_bytes:
                return False
            with open(tmp, "wb") as f:
                f.write(b"\0" * self.ballast_bytes)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self._ballast)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        self.disk_full = False
        return True

    def _release_ballast(self) -> bool:
        try:
            self._ballast.unlink()
        except FileNotFoundError:
            return False
        return True

    def _migrate(self) -> None:
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(outbox)")}
        if cols and "acked_at" not in cols:  # an outbox from before the replay window
            self._db.execute("ALTER TABLE outbox ADD COLUMN acked_at REAL")

    # -- meta / persistent state -------------------------------------------------------

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def save_state(self, key: str, value: dict[str, Any]) -> None:
        """Persist one piece of room state (JSON) durably."""
        self._db.execute(
            "INSERT INTO room_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def load_state(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM room_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- queue -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def depth(self) -> int:
        return self._depth

    def oldest_created(self) -> float | None:
        # seq order is creation order: the first pending row by primary key, not a scan
        row = self._db.execute(
            "SELECT created FROM outbox WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def enqueue(
        self,
        kind: str,
        topic: str,
        build: Callable[[int], bytes],
        *,
        qos: int = 1,
        retain: bool = False,
        state: dict[str, dict[str, Any]] | None = None,
    ) -> int | None:
        """Store a message built for the next seq; return the seq, or None if thinned away.

        `state`, if given, is saved in the same transaction (so a call and its message
        become durable together).
        """
        return self.enqueue_many([OutboxItem(kind, topic, build, qos, retain)], state)[0]

    def enqueue_many(
        self, items: list[OutboxItem], state: dict[str, dict[str, Any]] | None = None
    ) -> list[int | None]:
        """Store several messages (consecutive seqs) and the state in ONE transaction."""
        try:
            return self._enqueue_once(items, state)
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            self._rollback()
            self.disk_full = True
            # Free the reserve, thin the oldest vitals into the freed pages, try again.
            self._release_ballast()
            self._thin_vitals_safely()
            try:
                return self._enqueue_once(items, state)
            except sqlite3.OperationalError as exc2:
                if not _is_disk_full(exc2):
                    raise
                self._rollback()
            if all(item.kind == "vitals" for item in items):
                self.count_dropped_vitals(len(items))
                return [None] * len(items)
            raise OutboxFull("disk full: cannot store " + ", ".join(i.kind for i in items)) from exc

    def count_dropped_vitals(self, n: int) -> None:
        """Vitals that could not be stored: counted now, persisted with the next write."""
        self.vitals_thinned += n
        self._thinned_dirty = True

    def _thin_vitals_safely(self) -> int:
        try:
            return self._thin_vitals()
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            self._rollback()
            return 0

    def _enqueue_once(
        self, items: list[OutboxItem], state: dict[str, dict[str, Any]] | None
    ) -> list[int | None]:
        keep: list[OutboxItem | None] = []
        for item in items:
            if item.kind == "vitals" and self._depth >= self.max_rows and not self._thin_vitals():
                self.count_dropped_vitals(1)
                keep.append(None)
            else:
                keep.append(item)
        seqs: list[int | None] = []
        seq = self._last_seq
        rows = []
        for kept in keep:
            if kept is None:
                seqs.append(None)
                continue
            item = kept
            seq += 1
            rows.append(
                (
                    seq,
                    item.kind,
                    item.topic,
                    item.build(seq),
                    item.qos,
                    int(item.retain),
                    self._clock(),
                )
            )
            seqs.append(seq)
        if not rows and not state:
            return seqs
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO outbox (seq, kind, topic, payload, qos, retain, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._set_meta("last_seq", str(seq))
            if self._thinned_dirty:
                self._set_meta("vitals_thinned", str(self.vitals_thinned))
            for kind, n in Counter(r[1] for r in rows).items():
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                    "SET value = CAST(value AS INTEGER) + excluded.value",
                    (f"created_{kind}", n),
                )
            for key, value in (state or {}).items():
                self.save_state(key, value)
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._last_seq = seq
        self._depth += len(rows)
        self._thinned_dirty = False
        return seqs

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _thin_vitals(self) -> int:
        """Delete every second one of the oldest vitals rows; return how many went."""
        batch = max(2, self.max_rows // 10)
        rows = self._db.execute(
            "SELECT seq FROM outbox WHERE kind = 'vitals' AND acked_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (batch,),
        ).fetchall()
        doomed = [r[0] for r in rows[1::2]] or [r[0] for r in rows]
        if not doomed:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in doomed])
            self.vitals_thinned += len(doomed)
            self._set_meta("vitals_thinned", str(self.vitals_thinned))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.vitals_thinned -= len(doomed)
            raise
        self._depth -= len(doomed)
        return len(doomed)

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Rows waiting for a PUBACK with seq > after_seq, in order."""
        rows = self._db.execute(
            "SELECT seq, kind, topic, payload, qos, retain, created FROM outbox "
            "WHERE seq > ? AND acked_at IS NULL ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    # -- refused: a message the broker would refuse is never sent, never retried ------------

    @property
    def refused(self) -> int:
        """Messages set aside because the broker would refuse them (persisted)."""
        return int(self._meta("refused", "0"))

    def refuse(self, seq: int, reason: str, keep: int = REFUSED_KEEP) -> None:
        """Take a pending row out of the queue for good: the broker would refuse it (too big),
        so sending it again and again would wedge the link and hold back every later message.

        The row's head (first `REFUSED_HEAD_BYTES`), size and reason go to `outbox_refused`
        (the newest `keep` rows kept; older ones dropped) and `meta.refused` counts them all,
        in one transaction: a crash leaves the row either pending or set aside, never lost
        without a count.
        """
        self._db.execute(REFUSED_SCHEMA)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.execute(
                "INSERT INTO outbox_refused (seq, kind, topic, size, head, reason, refused_at) "
                "SELECT seq, kind, topic, length(payload), substr(payload, 1, ?), ?, ? "
                "FROM outbox WHERE seq = ? AND acked_at IS NULL",
                (REFUSED_HEAD_BYTES, reason[:500], self._clock(), seq),
            )
            if cur.rowcount:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._db.execute(
                    "DELETE FROM outbox_refused WHERE seq NOT IN "
                    "(SELECT seq FROM outbox_refused ORDER BY seq DESC LIMIT ?)",
                    (keep,),
                )
                self._set_meta("refused", str(self.refused + 1))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._depth -= cur.rowcount

    def ack(self, seqs: list[int]) -> None:
        """PUBACKs received: the rows are done, but kept for the replay window.

        Committed without fsync (synchronous=NORMAL): if power fails before the WAL reaches
        the disk, the rows come back as pending and are resent; the logger drops the
        duplicates on `(site, room, epoch, seq)`. Inserts keep their fsync.
        """
        if not seqs:
            return
        now = self._clock()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = self._db.executemany(
                "UPDATE outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                [(now, s) for s in seqs],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        self._depth -= cur.rowcount

    def replay_recent(self, window_s: float) -> int:
        """Make rows acknowledged in the last `window_s` seconds pending again.

        Mosquitto acknowledges a QoS 1 message before it saves it (it saves every
        `autosave_interval` seconds), so a broker killed with SIGKILL loses what it took in
        since its last save. Resending the recent window on every reconnect closes that gap.
        """
        cur = self._db.execute(
            "UPDATE outbox SET acked_at = NULL WHERE acked_at IS NOT NULL AND acked_at >= ?",
            (self._clock() - window_s,),
        )
        self._depth += cur.rowcount
        return int(cur.rowcount)

    def purge_acked(self, window_s: float, limit: int = 5000) -> int:
        """Delete acknowledged rows older than the replay window (a bounded batch)."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                "WHERE acked_at IS NOT NULL AND acked_at < ? LIMIT ?)",
                (self._clock() - window_s, limit),
            )
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            self._rollback()
            return 0
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        return int(cur.rowcount)

    def close(self) -> None:
        self._db.close()
