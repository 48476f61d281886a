"""PostgreSQL store, retention: the shared walk (`retention.py`) in psycopg transactions.

A room's ledger rows go in one statement (`unnest` of the deleted keys) rather than one per
key. Only `postgres.py` (the store) uses this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from broker.logger.store.dialect import POSTGRES
from broker.logger.store.retention import Retention

Conn = psycopg.Connection[Any]
Cursor = psycopg.Cursor[Any]


class PgRetention(Retention):
    """`Retention` on the writer's psycopg connection."""

    def __init__(self) -> None:
        super().__init__(POSTGRES)

    @contextmanager
    def _transaction(self, conn: Conn) -> Iterator[Cursor]:
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def _delete_ledger(self, cur: Cursor, site: str, room: str, keys: list[Any]) -> None:
        cur.execute(
            "DELETE FROM messages WHERE site = %s AND room = %s AND (epoch, seq) IN "
            "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
            (site, room, [k[0] for k in keys], [k[1] for k in keys]),
        )
