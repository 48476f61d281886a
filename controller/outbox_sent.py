"""Telemetry sent before it is stored (issue 17: sparing the SD card). Part of `Outbox` (a
mixin: the database and counters live on the outbox).

How this works: vitals and health may go to the broker from memory. `take_seq` gives such a
message a seq from a block reserved durably in `meta.seq_reserved` (one small write per
`SEQ_BLOCK` seqs), and the publisher stores it with `store_sent` only if the broker has not
acknowledged it within the hold bound (group commit); `count_sent` counts it in
`created_<kind>` with the next write. After an unclean stop the seqs between the last
stored one and the reservation are skipped at open (`_skip_unstored_seqs`: never reused,
the logger dedupes on the key) and recorded in `meta.seq_gaps` (`seq_gaps`, published in
the room's health), so an audit can tell them from loss. A clean `close` leaves no gap.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from controller.outbox_rows import OutboxRow

SEQ_BLOCK = 600  # seqs reserved at once for telemetry sent before it is stored


class SentFromMemory:
    """Mixed into `Outbox`; the attributes and methods below are the outbox's."""

    if TYPE_CHECKING:
        _db: sqlite3.Connection
        _clock: Callable[[], float]
        _depth: int
        _last_seq: int
        _reserved: int
        _created: Counter[str]
        _acks: dict[int, float]

        def _meta(self, key: str, default: str) -> str: ...
        def _set_meta(self, key: str, value: str) -> None: ...
        def _rollback(self) -> None: ...
        def _write_counters(self, created: Counter[str]) -> None: ...
        def _write_acks(self) -> dict[int, float]: ...
        def _after_commit(self, acked: dict[int, float], counters: bool = False) -> None: ...

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
