"""Reading a room's outbox from another process (the demo's audit, tests): what it made,
what it thinned and what still waits for a PUBACK, without writing to it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutboxAudit:
    """What a room's outbox says about every seq it made (read from another process)."""

    epoch: str
    last_seq: int
    created: dict[str, int]
    vitals_thinned: int
    pending: frozenset[int]
    refused: int = 0  # set aside: too large for the broker (Outbox.refuse)


def read_outbox(path: Path | str) -> OutboxAudit:
    """Read a room's outbox without writing to it (no schema, reserve or migration)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        pending = {r[0] for r in db.execute("SELECT seq FROM outbox WHERE acked_at IS NULL")}
    finally:
        db.close()
    return OutboxAudit(
        epoch=str(meta.get("epoch", "")),
        last_seq=int(meta.get("last_seq", 0)),
        created={
            k.removeprefix("created_"): int(v) for k, v in meta.items() if k.startswith("created_")
        },
        vitals_thinned=int(meta.get("vitals_thinned", 0)),
        pending=frozenset(pending),
        refused=int(meta.get("refused", 0)),
    )
