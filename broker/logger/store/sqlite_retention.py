"""SQLite store, retention: the shared walk (`retention.py`) in `BEGIN IMMEDIATE` transactions.

Only `sqlite.py` (the store) uses this module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from broker.logger.store.dialect import SQLITE
from broker.logger.store.retention import Retention


class SqliteRetention(Retention):
    """`Retention` on the writer's sqlite3 connection (autocommit; transactions explicit)."""

    def __init__(self) -> None:
        super().__init__(SQLITE)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
