"""The logger's store: the interface (`base.py`) and its implementations, chosen by URL.

`open_store("sqlite:///var/lib/roomctl/clinic.sqlite3")` or a plain path opens the SQLite
store (`sqlite.py`); `postgresql://...` is reserved for the PostgreSQL store (not written yet).
"""

from __future__ import annotations

from pathlib import Path

from broker.logger.store.base import BatchStats, LedgerCounts, LogStore, StoreError
from broker.logger.store.sqlite import SqliteLogStore

__all__ = ["BatchStats", "LedgerCounts", "LogStore", "StoreError", "open_store"]

SQLITE_SCHEME = "sqlite://"


def open_store(
    url_or_path: str | Path, *, synchronous: str = "FULL", readonly: bool = False
) -> LogStore:
    """The store at `url_or_path`: a file path or `sqlite:///abs/path` (`sqlite://rel/path`).

    `readonly=True`: never creates or migrates anything (the board, exports). `synchronous`
    only matters to the writer (see `sqlite_schema.open_db`).
    """
    target = str(url_or_path)
    if target.startswith(("postgresql://", "postgres://")):
        raise ValueError("a PostgreSQL store is not available yet: use a SQLite path")
    if target.startswith(SQLITE_SCHEME):
        target = target[len(SQLITE_SCHEME) :]
    elif "://" in target:
        raise ValueError(f"unknown store URL {target!r}: give a path or sqlite:///path")
    return SqliteLogStore(Path(target), synchronous=synchronous, readonly=readonly)
