"""The logger's store: the interface (`base.py`) and its implementations, chosen by URL.

`open_store("sqlite:///var/lib/roomctl/clinic.sqlite3")` or a plain path opens the SQLite
store (`sqlite.py`); `postgresql://...` is reserved for the PostgreSQL store (not written yet).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from broker.logger.store.base import (
    BatchStats,
    LedgerCounts,
    LogStore,
    QuarantineLimits,
    StoreError,
)
from broker.logger.store.sqlite import SqliteLogStore

__all__ = [
    "BatchStats",
    "LedgerCounts",
    "LogStore",
    "QuarantineLimits",
    "StoreError",
    "open_store",
    "store_path",
]

SQLITE_SCHEME = "sqlite://"


def store_path(location: str | Path) -> Path:
    """The SQLite file a `--db` value names, or a ValueError that says why it names none.

    Checked on the text the user gave, before anything becomes a `Path`: `Path` folds
    `postgresql://host/db` into `postgresql:/host/db`, which would then be created as a
    folder and a file instead of being refused.
    """
    target = str(location)
    if target.startswith(("postgresql://", "postgres://")):
        url = urlsplit(target)  # shown without its user and password
        raise ValueError(
            f"{url.scheme}://{url.hostname or ''}{url.path}: the PostgreSQL store is not "
            "available in this version; give a SQLite file path (or sqlite:///path)"
        )
    if target.startswith(SQLITE_SCHEME):
        target = target[len(SQLITE_SCHEME) :]
    elif "://" in target:
        raise ValueError(f"unknown store URL {target!r}: give a path or sqlite:///path")
    if not target.strip():
        raise ValueError("the store location is empty")
    return Path(target)


def open_store(
    url_or_path: str | Path,
    *,
    synchronous: str = "FULL",
    readonly: bool = False,
    quarantine: QuarantineLimits | None = None,
) -> LogStore:
    """The store at `url_or_path`: a file path or `sqlite:///abs/path` (`sqlite://rel/path`).

    `readonly=True`: never creates or migrates anything (the board, exports). `synchronous`
    only matters to the writer (see `sqlite_schema.open_db`), and so do the `quarantine` caps
    (`QuarantineLimits()` when None).
    """
    return SqliteLogStore(
        store_path(url_or_path), synchronous=synchronous, readonly=readonly, quarantine=quarantine
    )
