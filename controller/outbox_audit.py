"""Reading a room's outbox from another process (the demo's audit, tests): what it made,
what it thinned and what still waits for a PUBACK, without writing to it."""

from __future__ import annotations

import json
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
    # seq ranges of vitals/health sent from memory and never stored (issue 17): skipped
    # after unclean stops, and (last_seq, seq_reserved] while the room runs or after a crash
    gaps: tuple[tuple[int, int], ...] = ()

    def in_gap(self, seq: int) -> bool:
        return any(a <= seq <= b for a, b in self.gaps)

    def gap_seqs_upto(self, last: int) -> int:
        """How many seqs up to `last` lie in gaps."""
        return sum(max(0, min(b, last) - a + 1) for a, b in self.gaps)


def read_outbox(path: Path | str) -> OutboxAudit:
    """Read a room's outbox without writing to it (no schema, reserve or migration)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        pending = {r[0] for r in db.execute("SELECT seq FROM outbox WHERE acked_at IS NULL")}
    finally:
        db.close()
    last_seq, reserved = int(meta.get("last_seq", 0)), int(meta.get("seq_reserved", 0))
    gaps = [(int(a), int(b)) for a, b in json.loads(meta.get("seq_gaps", "[]"))]
    if reserved > last_seq:
        gaps.append((last_seq + 1, reserved))
    return OutboxAudit(
        epoch=str(meta.get("epoch", "")),
        last_seq=last_seq,
        created={
            k.removeprefix("created_"): int(v) for k, v in meta.items() if k.startswith("created_")
        },
        vitals_thinned=int(meta.get("vitals_thinned", 0)),
        pending=frozenset(pending),
        refused=int(meta.get("refused", 0)),
        gaps=tuple(gaps),
    )
