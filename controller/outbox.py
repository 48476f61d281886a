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
- Telemetry (vitals, health) may be sent before it is stored, with a seq from a durably
  reserved block (`outbox_sent`).
- PUBACKs are buffered (`ack`) and written with the next transaction, at the latest with
  `purge_acked`; a power cut loses only acknowledgement records, and those rows are resent.
- Deleted rows are not zeroed on the card (`secure_delete=FAST`).

The outbox's other concerns are mixins in their own modules: the size cap and a full disk
(`outbox_space`), rows the broker would refuse (`outbox_refused`); its row types are in
`outbox_rows`. Everything is re-exported here: `from controller.outbox import ...`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contract.messages import new_epoch
from controller.outbox_refused import REFUSED_HEAD_BYTES as REFUSED_HEAD_BYTES
from controller.outbox_refused import REFUSED_KEEP as REFUSED_KEEP
from controller.outbox_refused import RefusedRows
from controller.outbox_rows import OutboxFull as OutboxFull
from controller.outbox_rows import OutboxItem as OutboxItem
from controller.outbox_rows import OutboxRow as OutboxRow
from controller.outbox_rows import is_disk_full
from controller.outbox_sent import SEQ_BLOCK as SEQ_BLOCK
from controller.outbox_sent import SentFromMemory
from controller.outbox_space import BALLAST_BYTES as BALLAST_BYTES
from controller.outbox_space import DiskSpace

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


class Outbox(SentFromMemory, DiskSpace, RefusedRows):
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
            if not is_disk_full(exc):
                raise
            self._rollback()
            self.disk_full = True
            # Free the reserve, thin the oldest vitals into the freed pages, try again.
            self._release_ballast()
            self._thin_vitals_safely()
            try:
                return self._enqueue_once(items, state, sent)
            except sqlite3.OperationalError as exc2:
                if not is_disk_full(exc2):
                    raise
                self._rollback()
            if all(item.kind == "vitals" for item in items):
                self.count_dropped_vitals(len(items))
                return [None] * len(items)
            raise OutboxFull("disk full: cannot store " + ", ".join(i.kind for i in items)) from exc

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

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

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
            if not is_disk_full(exc):
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
