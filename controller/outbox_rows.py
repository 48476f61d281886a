"""The outbox's rows: what is stored (`OutboxItem`), what is read back or sent from memory
(`OutboxRow`), and the one error a caller must handle (`OutboxFull`). Shared by the outbox's
modules (`outbox`, `outbox_sent`, `outbox_space`, `outbox_refused`) and the publisher."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


class OutboxFull(Exception):
    """A message that must not be dropped could not be stored (disk full)."""


@dataclass(frozen=True)
class OutboxItem:
    """A message to store: `build(seq)` makes its payload once its seq is known."""

    kind: str
    topic: str
    build: Callable[[int], bytes]
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    kind: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


def is_disk_full(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "full" in text or getattr(exc, "sqlite_errorcode", None) == 13  # SQLITE_FULL
