"""The logger's SQLite store without a broker: messages as the logger receives them
(classified, with a fixed receive time), written straight into a store, and raw SQL to look
at what it holds (tests may read the schema; nothing outside the store writes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.logger.ingest import Classified, classify
from broker.logger.store import open_store
from broker.logger.store.sqlite import SqliteLogStore
from contract import messages

SITE = "s1"
T0 = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)
RX = "2026-01-01T08:00:00.000Z"
MAX_BYTES = 65536


def received(
    topic: str,
    payload: messages.Envelope | bytes | str,
    max_bytes: int = MAX_BYTES,
    site: str = SITE,
    rx: str = RX,
) -> tuple[Classified, str]:
    """One message as the logger's batch holds it: classified, with its receive time."""
    if isinstance(payload, messages.Envelope):
        payload = payload.model_dump_json()
    data = payload.encode() if isinstance(payload, str) else payload
    return classify(topic, data, site, max_bytes), rx


def put(
    store: SqliteLogStore,
    topic: str,
    payload: messages.Envelope | bytes | str,
    max_bytes: int = MAX_BYTES,
) -> None:
    """Write one message as a batch of its own."""
    store.write_batch([received(topic, payload, max_bytes)])


def q(store: SqliteLogStore, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Raw SQL on the store's own connection."""
    assert store.conn is not None
    return store.conn.execute(sql, args).fetchall()


@pytest.fixture
def store(tmp_path: Path) -> SqliteLogStore:
    """A fresh SQLite log store in tmp_path (schema created)."""
    got = open_store(tmp_path / "log.db")
    assert isinstance(got, SqliteLogStore)
    return got
