"""The logger's store without a broker: messages as the logger receives them (classified,
with a fixed receive time), written straight into a store, and raw SQL to look at what it
holds (tests may read the schema; nothing outside the store writes it).

The `store` fixture runs each test twice, on SQLite and on PostgreSQL (a fresh database of the
session's throw-away cluster): the same test proves the same behaviour on both engines. `q`
takes SQLite's `?` placeholders and runs on either engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.logger.ingest import Classified, classify
from broker.logger.store import LogStore, open_store
from broker.logger.store.postgres import PostgresLogStore
from broker.logger.store.postgres_batch import PgBatchWriter
from broker.logger.store.sqlite import SqliteLogStore
from broker.logger.store.sqlite_batch import BatchWriter
from contract import messages
from tests.support.postgres import PgDatabases

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


def mixed_batch() -> list[tuple[Classified, str]]:
    """One of everything the logger stores, for two rooms: vitals, a call's lifecycle, a
    session's phases, state and call snapshots, availability, a command, a bad payload."""
    import json
    from datetime import timedelta

    from contract import topics
    from tests.support.clinic_rooms import event, vitals
    from tests.support.mqtt import staff_command

    K = messages.EventKind
    items: list[tuple[Classified, str]] = []
    for room in ("101", "102"):
        ev = topics.events(SITE, room)
        items += [received(topics.vitals(SITE, room), vitals(SITE, room, s)) for s in (1, 2, 3)]
        items += [
            received(ev, event(SITE, room, 4, K.CALL_PLACED, call_id=f"c{room}", ts=T0,
                               priority=messages.CallPriority.NORMAL, detail={"k": 1})),
            received(ev, event(SITE, room, 5, K.CALL_CLAIMED, call_id=f"c{room}", by="alice",
                               ts=T0 + timedelta(seconds=42.5))),
            received(ev, event(SITE, room, 6, K.PHASE_CHANGED, phase="infusion",
                               from_phase="pre_check", session_id=f"s{room}", ts=T0)),
            received(ev, event(SITE, room, 7, K.PHASE_CHANGED, phase="recovery",
                               from_phase="infusion", session_id=f"s{room}",
                               ts=T0 + timedelta(minutes=45))),
            received(topics.availability(SITE, room), b"online"),
            received(topics.cmd(SITE, room, "claim", "bob"),
                     json.dumps(staff_command(call_id=f"c{room}", by="bob")).encode()),
            received(topics.vitals(SITE, room), b"{broken"),
        ]  # fmt: skip
    return items


def put(
    store: LogStore,
    topic: str,
    payload: messages.Envelope | bytes | str,
    max_bytes: int = MAX_BYTES,
) -> None:
    """Write one message as a batch of its own."""
    store.write_batch([received(topic, payload, max_bytes)])


def q(store: LogStore, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Raw SQL (`?` placeholders) on the store's own connection, SQLite or PostgreSQL."""
    if isinstance(store, PostgresLogStore):
        assert store.conn is not None
        cur = store.conn.execute(sql.replace("?", "%s").encode(), args)
        return cur.fetchall() if cur.description is not None else []
    assert isinstance(store, SqliteLogStore) and store.conn is not None
    return store.conn.execute(sql, args).fetchall()


def fail_inserts(store: LogStore, table: str, message: str) -> type[Exception]:
    """Make every insert into `table` fail with `message` (a disk or server fault); return
    the engine's error class the store's `StoreError` is raised from."""
    if isinstance(store, PostgresLogStore):
        q(
            store,
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
        )
        trigger = f"CREATE TRIGGER boom BEFORE INSERT ON {table} FOR EACH ROW"
        q(store, f"{trigger} EXECUTE FUNCTION boom()")
        return psycopg.Error
    raise_it = f"SELECT RAISE(ABORT, '{message}')"
    q(store, f"CREATE TRIGGER boom BEFORE INSERT ON {table} BEGIN {raise_it}; END")
    return sqlite3.Error


def writer_class(store: LogStore) -> type[BatchWriter] | type[PgBatchWriter]:
    """The class that writes the store's batches (for tests that break one of its methods)."""
    return PgBatchWriter if isinstance(store, PostgresLogStore) else BatchWriter


def open_like(store: LogStore, tmp_path: Path, **kwargs: Any) -> LogStore:
    """Another store on the same engine as `store`, at the same place (readonly, other caps)."""
    if isinstance(store, PostgresLogStore):
        return open_store(store.url, **kwargs)
    assert isinstance(store, SqliteLogStore)
    return open_store(store.path, **kwargs)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    """A fresh log store (schema created): SQLite in tmp_path, then PostgreSQL."""
    if request.param == "sqlite":
        got = open_store(tmp_path / "log.db")
    else:
        databases: PgDatabases = request.getfixturevalue("pg_databases")
        url = databases.fresh()
        got = open_store(url)
    try:
        yield got
    finally:
        got.close()
        if request.param == "postgres":
            databases.drop(url)
