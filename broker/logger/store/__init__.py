"""The logger's store: the interface (`base.py`) and its implementations, chosen by URL.

`open_store("sqlite:///var/lib/roomctl/clinic.sqlite3")` or a plain path opens the SQLite
store (`sqlite.py`, the embedded default for one clinic); `postgresql://user@host/db` (or
`postgres://`, with any libpq parameters) opens the PostgreSQL store (`postgres.py`, for a
clinic group: several loggers, one database). psycopg is imported only for PostgreSQL.
"""

from __future__ import annotations

import re
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
    "store_location",
]

SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


# A URL that went through `Path` on its way here: `Path("postgresql://h/db")` is
# `postgresql:/h/db`. Never a file anybody meant to create.
FOLDED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/(?!/)")


def is_postgres(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def store_location(location: str | Path) -> Path | str:
    """What a `--db` value names: a SQLite file (a `Path`) or a PostgreSQL URL (kept as text),
    or a ValueError that says why it names neither.

    Checked on the text the user gave, before anything becomes a `Path`: `Path` folds
    `postgresql://host/db` into `postgresql:/host/db`, which would then be created as a
    folder and a file.
    """
    if isinstance(location, Path):
        if FOLDED_URL.match(str(location)):
            raise ValueError(
                f"{str(location)!r} is a URL made into a file name ('//' folded to '/'): "
                "give the URL as text, e.g. postgresql://host/db"
            )
        return location
    target = str(location)
    if target.startswith(POSTGRES_SCHEMES):
        url = urlsplit(target)
        if not url.path.strip("/") and "dbname=" not in url.query:
            raise ValueError(f"{url.scheme}://{url.hostname or ''}: name the database (/dbname)")
        return target
    if target.startswith(SQLITE_SCHEME):
        target = target[len(SQLITE_SCHEME) :]
    elif "://" in target:
        raise ValueError(f"unknown store URL {target!r}: give a path, sqlite:///path or postgresql://host/db")
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
    """The store at `url_or_path`: a file path, `sqlite:///abs/path` (`sqlite://rel/path`) or
    `postgresql://...`.

    `readonly=True`: never creates or migrates anything (the board, exports). `synchronous`
    only matters to a SQLite writer (see `sqlite_schema.open_db`; PostgreSQL commits are
    durable as the server is configured), and the `quarantine` caps to any writer
    (`QuarantineLimits()` when None).
    """
    where = store_location(url_or_path)
    if isinstance(where, str):
        from broker.logger.store.postgres import PostgresLogStore

        return PostgresLogStore(where, readonly=readonly, quarantine=quarantine)
    return SqliteLogStore(
        where, synchronous=synchronous, readonly=readonly, quarantine=quarantine
    )
