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
  so a SIGKILL loses neither the call nor the phase. A blob is written only when it changed.

Sparing the SD card (issue 17): every commit costs whole 4 KiB pages (table, indexes, meta,
WAL frame, fsync), so a row per second costs about 30 KiB/s. Three things keep a 1 Hz room
under 2 KiB/s:
- Telemetry (vitals, health) may be sent before it is stored: `take_seq` gives it a seq
  from a block reserved durably in `meta.seq_reserved` (one small write per `SEQ_BLOCK`
  seqs), and the publisher stores it with `store_sent` only if the broker has not
  acknowledged it within the hold bound (group commit). After an unclean stop the seqs
  between the last stored one and the reservation are skipped (never reused: the logger
  dedupes on the key) and recorded in `meta.seq_gaps`, so an audit can tell them from loss.
  A clean `close` leaves no gap.
- PUBACKs are buffered (`ack`) and written with the next transaction, at the latest with
  `purge_acked`; a power cut loses only acknowledgement records, and those rows are resent.
- Deleted rows are not zeroed on the card (`secure_delete=FAST`).

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
from collections.abc import Callable, Sequence
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
SEQ_BLOCK = 600  # seqs reserved at once for telemetry sent before it is stored
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
        self._db.execute("PRAGMA secure_delete=FAST")  # no extra page writes on DELETE
        self._db.execute("PRAGMA cache_size=-1024")  # 1 MiB of page cache (a Pi's RSS budget)
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
        self._refused: int | None = None  # meta.refused, read once (see `refused`)
        self._acks: dict[int, float] = {}  # PUBACKed seq -> when; written with the next commit
        self._created: Counter[str] = Counter()  # made but not yet counted in meta
        self._state_saved: dict[str, Any] = {}  # blob key -> the value as last stored
        self.seqs_skipped = self._skip_unstored_seqs()
        self._depth = int(
            self._db.execute("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
        )
        self.ensure_ballast()

    def _skip_unstored_seqs(self) -> int:
        """After an unclean stop, never reuse a seq that telemetry may have been sent with."""
        reserved = int(self._meta("seq_reserved", "0"))
        if reserved <= self._last_seq:
            self._reserved = self._last_seq
            return 0
        gaps = json.loads(self._meta("seq_gaps", "[]"))
        gaps.append([self._last_seq + 1, reserved])
        self._db.execute("BEGIN IMMEDIATE")
        self._set_meta("seq_gaps", json.dumps(gaps[-1000:]))
        self._set_meta("last_seq", str(reserved))
        self._db.execute("COMMIT")
        skipped = reserved - self._last_seq
        self._last_seq = self._reserved = reserved
        return skipped

    def seq_gaps(self) -> list[tuple[int, int]]:
        """Seq ranges skipped after unclean stops (telemetry sent from memory, or unused)."""
        return [(int(a), int(b)) for a, b in json.loads(self._meta("seq_gaps", "[]"))]

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
        """Persist one piece of room state (JSON) durably (a no-op if it did not change).

        Called inside a transaction; `_state_saved` is updated by the caller on COMMIT.
        """
        if self._state_saved.get(key) == value:
            return
        self._db.execute(
            "INSERT INTO room_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def state_changed(self, state: dict[str, dict[str, Any]]) -> bool:
        """True if storing `state` would write anything (a dict comparison: cheap at 1 Hz)."""
        return any(self._state_saved.get(k) != v for k, v in state.items())

    def load_state(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM room_state WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        value: dict[str, Any] = json.loads(row[0])
        self._state_saved[key] = value
        return value

    # -- queue -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def depth(self) -> int:
        return self._depth

    def oldest_created(self) -> float | None:
        # seq order is creation order: the first pending row by primary key, not a scan
        rows = self._db.execute(
            "SELECT seq, created FROM outbox WHERE acked_at IS NULL ORDER BY seq LIMIT ?",
            (len(self._acks) + 1,),
        ).fetchall()
        for seq, created in rows:
            if seq not in self._acks:  # a buffered PUBACK is an acknowledgement already
                return float(created) if created is not None else None
        return None

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
        self,
        items: list[OutboxItem],
        state: dict[str, dict[str, Any]] | None = None,
        sent: Sequence[OutboxRow] = (),
    ) -> list[int | None]:
        """Store several messages (consecutive seqs) and the state in ONE transaction.

        `sent`: telemetry that already has its seq (sent from memory, not yet acknowledged)
        is stored first in the same transaction, so every seq up to `last_seq` is either
        stored or acknowledged by the broker.
        """
        try:
            return self._enqueue_once(items, state, sent)
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            self._rollback()
            self.disk_full = True
            # Free the reserve, thin the oldest vitals into the freed pages, try again.
            self._release_ballast()
            self._thin_vitals_safely()
            try:
                return self._enqueue_once(items, state, sent)
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
        self,
        items: list[OutboxItem],
        state: dict[str, dict[str, Any]] | None,
        sent: Sequence[OutboxRow] = (),
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
        if not rows and not state and not sent:
            return seqs
        self._db.execute("BEGIN IMMEDIATE")
        try:
            stored_sent = self._insert_sent([(r, None) for r in sent])
            self._db.executemany(
                "INSERT INTO outbox (seq, kind, topic, payload, qos, retain, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if rows:
                self._set_meta("last_seq", str(seq))
            created = self._created + Counter(r[1] for r in rows)
            self._write_counters(created)
            for key, value in (state or {}).items():
                self.save_state(key, value)
            acked = self._write_acks()
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._last_seq = seq
        self._depth += len(rows) + stored_sent
        self._after_commit(acked, counters=True)
        for key, value in (state or {}).items():
            self._state_saved[key] = value
        return seqs

    def _write_counters(self, created: Counter[str]) -> None:
        """Inside a transaction: the thinned count and the per-kind created counters."""
        if self._thinned_dirty:
            self._set_meta("vitals_thinned", str(self.vitals_thinned))
        for kind, n in created.items():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = CAST(value AS INTEGER) + excluded.value",
                (f"created_{kind}", n),
            )

    def _after_commit(self, acked: dict[int, float], counters: bool = False) -> None:
        """After COMMIT: the written PUBACKs leave the buffer; `counters`: so did the counts."""
        if counters:
            self._thinned_dirty = False
            self._created = Counter()
        for s in acked:
            self._acks.pop(s, None)

    def _write_acks(self) -> dict[int, float]:
        """Inside a transaction: record the buffered PUBACKs; return what was written."""
        acked = dict(self._acks)
        if acked:
            cur = self._db.executemany(
                "UPDATE outbox SET acked_at = ? WHERE seq = ? AND acked_at IS NULL",
                [(t, s) for s, t in acked.items()],
            )
            # `ack` counted every buffered seq as done; a row thinned meanwhile was not pending
            self._depth += len(acked) - max(0, cur.rowcount)
        return acked

    # -- telemetry sent before it is stored ----------------------------------------------

    def take_seq(self) -> int:
        """The next seq, for a message sent before it is stored (vitals, health).

        The seq is covered by `meta.seq_reserved` (written with fsync, a block at a time)
        before it is returned, so no later message can reuse it, even after a power cut.
        """
        seq = self._last_seq + 1
        if seq > self._reserved:
            self._set_meta("seq_reserved", str(seq + SEQ_BLOCK - 1))  # autocommit: one fsync
            self._reserved = seq + SEQ_BLOCK - 1
        self._last_seq = seq
        return seq

    def store_sent(self, rows: list[tuple[OutboxRow, float | None]]) -> int:
        """Store messages that already have a seq (and a payload) in one transaction.

        Each row goes in pending (`None`) or as acknowledged at the given time (for the
        replay window). A seq stored already is left alone. Returns how many new rows are
        pending.
        """
        if not rows and not self._acks:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            stored = self._insert_sent(rows)
            self._set_meta("last_seq", str(self._last_seq))
            self._write_counters(self._created)
            acked_now = self._write_acks()
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._depth += stored
        self._after_commit(acked_now, counters=True)
        return stored

    def _insert_sent(self, rows: Sequence[tuple[OutboxRow, float | None]]) -> int:
        """Inside a transaction: insert rows with their own seq; return how many new pending."""
        pending = 0
        for r, acked in rows:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox "
                "(seq, kind, topic, payload, qos, retain, created, acked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (r.seq, r.kind, r.topic, r.payload, r.qos, int(r.retain), r.created, acked),
            )
            pending += int(cur.rowcount > 0 and acked is None)
        return pending

    def count_sent(self, kind: str) -> None:
        """A message made and sent from memory: counted in `created_<kind>` with the next write."""
        self._created[kind] += 1

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
            (after_seq, limit + len(self._acks)),
        ).fetchall()
        return [
            OutboxRow(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6])
            for r in rows
            if r[0] not in self._acks
        ][:limit]

    # -- refused: a message the broker would refuse is never sent, never retried ------------

    @property
    def refused(self) -> int:
        """Messages set aside because the broker would refuse them (persisted; read from disk
        once, then kept in memory: the daemon asks on every pass of its loop)."""
        if self._refused is None:
            self._refused = int(self._meta("refused", "0"))
        return self._refused

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
        if cur.rowcount:
            self._refused = self.refused + 1
        self._depth -= cur.rowcount

    def ack(self, seqs: list[int]) -> None:
        """PUBACKs received: the rows are done, but kept for the replay window.

        Buffered in memory and written with the next transaction, when nothing is left
        pending, or at the latest by `purge_acked` (every minute), without an fsync:
        if power fails first, the rows come back as pending and are resent; the logger
        drops the duplicates on `(site, room, epoch, seq)`. Inserts keep their fsync.
        """
        now = self._clock()
        for s in seqs:
            if s not in self._acks:
                self._acks[s] = now
                self._depth -= 1
        if self._depth <= 0:  # drained: say so on disk too (rare while telemetry skips it)
            self.write_acks()

    def write_acks(self) -> None:
        """Write the buffered PUBACKs now (one transaction, no fsync)."""
        if not self._acks:
            return
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            acked = self._write_acks()
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        self._after_commit(acked)

    def replay_recent(self, window_s: float) -> int:
        """Make rows acknowledged in the last `window_s` seconds pending again.

        Mosquitto acknowledges a QoS 1 message before it saves it (it saves every
        `autosave_interval` seconds), so a broker killed with SIGKILL loses what it took in
        since its last save. Resending the recent window on every reconnect closes that gap.
        """
        self.write_acks()
        cur = self._db.execute(
            "UPDATE outbox SET acked_at = NULL WHERE acked_at IS NOT NULL AND acked_at >= ?",
            (self._clock() - window_s,),
        )
        self._depth += cur.rowcount
        return int(cur.rowcount)

    def purge_acked(self, window_s: float, limit: int = 5000) -> int:
        """Delete acknowledged rows older than the replay window (a bounded batch).

        The buffered PUBACKs are written in the same transaction (no fsync).
        """
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            acked = self._write_acks()
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                "WHERE acked_at IS NOT NULL AND acked_at < ? LIMIT ?)",
                (self._clock() - window_s, limit),
            )
            self._db.execute("COMMIT")
            self._after_commit(acked)
        except sqlite3.OperationalError as exc:
            if not _is_disk_full(exc):
                raise
            self._rollback()
            return 0
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        return int(cur.rowcount)

    def close(self) -> None:
        """A clean stop: write the buffered PUBACKs and counters, release the seq reservation
        (the next start continues at the next seq, with no gap)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            acked = self._write_acks()
            self._write_counters(self._created)
            self._set_meta("last_seq", str(self._last_seq))
            self._set_meta("seq_reserved", str(self._last_seq))
            self._db.execute("COMMIT")
            self._after_commit(acked, counters=True)
        except sqlite3.Error:
            self._rollback()  # a full disk: the next start skips the reserved seqs instead
        self._db.close()
