"""Rows the broker would refuse, set aside for good. Part of `Outbox` (a mixin: the
database lives on the outbox).

How this works: a message bigger than the broker's packet limit would be refused at every
attempt and hold back every later message, so the publisher's pump calls `refuse`: the
row leaves the queue, its head, size and reason go to `outbox_refused` (the newest
`REFUSED_KEEP` kept, for diagnosis) and `meta.refused` counts them all, published in the
room's health as `outbox.refused`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

# Messages the broker would refuse (see `refuse`): what is kept of them, for diagnosis.
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


class RefusedRows:
    """Mixed into `Outbox`; the attributes and methods below are the outbox's."""

    if TYPE_CHECKING:
        _db: sqlite3.Connection
        _clock: Callable[[], float]
        _depth: int
        _refused: int | None

        def _meta(self, key: str, default: str) -> str: ...
        def _set_meta(self, key: str, value: str) -> None: ...
        def _rollback(self) -> None: ...

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
