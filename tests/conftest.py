"""Shared fixtures: a real Mosquitto started from the project's own config on a free port; the
clinic (TLS broker with its PKI), the board, the logger's store (SQLite and PostgreSQL), the
throw-away PostgreSQL cluster and the converged Ansible root fixtures come from tests/support/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto
from tests.support.ansible_fixtures import converged
from tests.support.board_fixtures import board, browser, page
from tests.support.clinic_fixtures import clinic, clinic_rooms
from tests.support.logger_store import store
from tests.support.postgres import pg_cluster, pg_databases, pg_url

__all__ = [
    "board",
    "browser",
    "clinic",
    "clinic_rooms",
    "converged",
    "mosquitto",
    "page",
    "pg_cluster",
    "pg_databases",
    "pg_url",
    "shared_mosquitto",
    "store",
]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker per test (persistence in tmp_path), stopped afterwards."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the whole session, for tests that only need a working broker."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-shared")).start()
    try:
        yield broker
    finally:
        broker.stop()
