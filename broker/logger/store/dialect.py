"""What differs between the two engines' SQL: one `Dialect` each, and nothing else.

How this works: every query of the store is written once, with `?` marks for its values and,
where the engines disagree, a fragment taken from the dialect (`greatest`, `seconds`, ...).
`Dialect.sql(text)` turns the marks into the engine's own (`%s` for psycopg) and remembers the
result, so a query rendered on a hot path costs one dictionary look-up. The query text never
holds a literal `?` or `%`: both would be taken as marks by one engine or the other.

The differences, all of them:
- the value mark: `?` (sqlite3) or `%s` (psycopg);
- scalar maximum and minimum: SQLite's `MAX(a, b)`/`MIN(a, b)`, PostgreSQL's `GREATEST`/`LEAST`;
- the byte length of a BLOB/bytea: `length` or `octet_length`;
- seconds between two RFC 3339 texts: `julianday` arithmetic or a `timestamptz` cast;
- a text prefix test: `substr(...) = ?` or `starts_with(...)`;
- counting distinct ledger keys: a concatenated text or a row value;
- a number inside stored JSON text: `json_extract` or `jsonb #>>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol


class Cursor(Protocol):
    """What the store's shared SQL needs of a DB-API cursor (sqlite3's and psycopg's alike)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: Any, params_seq: Any, /) -> Any: ...


@lru_cache(maxsize=1024)
def _render(mark: str, text: str) -> str:
    return text if mark == "?" else text.replace("?", mark)


@dataclass(frozen=True)
class Dialect:
    """The SQL fragments that differ between SQLite and PostgreSQL."""

    name: str
    mark: str
    greatest: str
    least: str
    byte_length: str

    def sql(self, text: str) -> str:
        """`text` (written with `?` marks) in this engine's paramstyle."""
        return _render(self.mark, text)

    def seconds(self, start: str, end: str) -> str:
        """SQL: seconds from `start` to `end` (RFC 3339 text), rounded to the millisecond."""
        if self.name == "sqlite":
            return f"ROUND((julianday({end}) - julianday({start})) * 86400.0, 3)"
        interval = f"({end})::timestamptz - ({start})::timestamptz"
        return f"ROUND(EXTRACT(EPOCH FROM {interval}), 3)::float8"

    def starts_with(self, column: str, prefix: str) -> tuple[str, list[object]]:
        """SQL and values: `column` begins with `prefix` (the engine's indexable form)."""
        if self.name == "sqlite":
            return f"substr({column}, 1, ?) = ?", [len(prefix), prefix]
        return f"starts_with({column}, ?)", [prefix]

    def json_number(self, column: str, *path: str) -> str:
        """SQL: the number at `path` (keys) of the JSON text in `column`, NULL if absent."""
        if self.name == "sqlite":
            return f"CAST(json_extract({column}, '$.{'.'.join(path)}') AS REAL)"
        return f"CAST({column}::jsonb #>> '{{{','.join(path)}}}' AS DOUBLE PRECISION)"

    def distinct_keys(self, *columns: str) -> str:
        """SQL: `COUNT(DISTINCT ...)` of the row value made of `columns`."""
        if self.name == "sqlite":  # COUNT(DISTINCT) takes one expression there
            return "COUNT(DISTINCT " + " || '/' || ".join(columns) + ")"
        return f"COUNT(DISTINCT ({', '.join(columns)}))"


SQLITE = Dialect("sqlite", mark="?", greatest="MAX", least="MIN", byte_length="length")
POSTGRES = Dialect(
    "postgres", mark="%s", greatest="GREATEST", least="LEAST", byte_length="octet_length"
)
