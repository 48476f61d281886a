"""Fault-injection harness, the audit: what the logger's database holds against what the rooms
created (every seq, the call chains), and the rows of the report that `python -m
tools.reliability` turns into docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.reliability_rooms import SITE

CALL_ORDER = {"call_placed": 0, "call_priority_raised": 1, "call_escalated": 2}
CALL_END = {"call_claimed", "call_cancelled"}


@dataclass
class Audit:
    """What the database holds against what the rooms created."""

    created: dict[str, int] = field(default_factory=dict)  # room -> last seq
    thinned: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    unexpected: dict[str, list[int]] = field(default_factory=dict)
    table_mismatch: list[str] = field(default_factory=list)
    quarantined: int = 0
    calls: int = 0
    bad_calls: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Seqs missing beyond those the outbox says it thinned (must be 0)."""
        return sum(max(0, len(m) - self.thinned.get(r, 0)) for r, m in self.missing.items())

    @property
    def messages(self) -> int:
        return sum(self.created.values())

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"lost {self.lost}: {self.missing}")
        if any(self.unexpected.values()):
            out.append(f"seqs no room created: {self.unexpected}")
        out += self.table_mismatch + self.bad_calls
        if self.quarantined:
            out.append(f"{self.quarantined} messages quarantined")
        return out


def db_connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def db_rows(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows of one query on the logger's database, read-only."""
    conn = db_connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


Gaps = dict[str, list[tuple[int, int]]]  # room -> seq ranges sent from memory, never stored


def in_gaps(seq: int, gaps: list[tuple[int, int]]) -> bool:
    return any(a <= seq <= b for a, b in gaps)


def db_has_all(
    db: Path,
    targets: dict[str, int],
    thinned: dict[str, int] | None = None,
    gaps: Gaps | None = None,
) -> bool:
    """True when the ledger holds every seq <= target for each room (minus thinned seqs and
    the seq gaps of telemetry that was never stored)."""
    if not db.exists():
        return False
    try:
        conn = db_connect(db)
    except sqlite3.Error:
        return False
    try:
        for room, last in targets.items():
            room_gaps = (gaps or {}).get(room, [])
            have = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM messages WHERE site = ? AND room = ? AND seq <= ?",
                    (SITE, room, last),
                )
                if not in_gaps(r[0], room_gaps)
            ]
            expected = last - sum(max(0, min(b, last) - a + 1) for a, b in room_gaps)
            if len(have) + (thinned or {}).get(room, 0) < expected:
                return False
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def db_max_seqs(db: Path) -> dict[str, int]:
    """Per room, the highest seq the logger's ledger holds (empty until it exists)."""
    if not db.exists():
        return {}
    try:
        rows = db_rows(db, "SELECT room, MAX(seq) FROM messages WHERE site = ? GROUP BY room", SITE)
    except sqlite3.Error:
        return {}
    return {str(room): int(seq) for room, seq in rows}


def audit(
    db: Path,
    created: dict[str, int],
    thinned: dict[str, int],
    live: bool = False,
    gaps: Gaps | None = None,
) -> Audit:
    """Compare the database with what the rooms created. `live`: rooms still running, so
    seqs above `created` (made after it was read) are expected, not suspicious. `gaps`:
    seqs of telemetry sent from memory and never stored (issue 17: vitals and health a
    room had not stored when it died) are not counted as missing; nothing stored is ever
    in one."""
    out = Audit(created=dict(created), thinned=dict(thinned))
    conn = db_connect(db)
    try:
        # one read transaction: the counts below come from one snapshot of the WAL, even
        # while the logger keeps committing (rooms still running)
        conn.execute("BEGIN")
        for room, last in created.items():
            got = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM messages WHERE site = ? AND room = ? ORDER BY seq",
                    (SITE, room),
                )
            ]
            have = set(got)
            room_gaps = (gaps or {}).get(room, [])
            out.missing[room] = [
                s for s in range(1, last + 1) if s not in have and not in_gaps(s, room_gaps)
            ]
            out.unexpected[room] = [
                s for s in got if s < 1 or (s > last and not live and not in_gaps(s, room_gaps))
            ]
        for kind in ("vitals", "events"):
            ledger = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE kind = ?", (kind,)
            ).fetchone()[0]
            table = conn.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0]
            if ledger != table:
                out.table_mismatch.append(f"{kind}: ledger {ledger} rows, table {table}")
        out.quarantined = int(conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0])
        out.bad_calls, out.calls = check_calls(conn)
    finally:
        conn.close()
    return out


def check_calls(conn: sqlite3.Connection) -> tuple[list[str], int]:
    """Every call: its events in seq order start with call_placed and end at most once;
    the `calls` row exists and its status agrees with the last event."""
    bad: list[str] = []
    chains: dict[tuple[str, str], list[str]] = {}
    for room, call_id, kind in conn.execute(
        "SELECT room, call_id, kind FROM events WHERE call_id IS NOT NULL AND site = ? "
        "ORDER BY room, seq",
        (SITE,),
    ):
        if kind.startswith("call_"):
            chains.setdefault((room, call_id), []).append(kind)
    rows = {
        (r, c): s
        for r, c, s in conn.execute(
            "SELECT room, call_id, status FROM calls WHERE site = ?", (SITE,)
        )
    }
    for key, kinds in chains.items():
        if kinds[0] != "call_placed" or kinds.count("call_placed") != 1:
            bad.append(f"call {key}: events {kinds} do not start with one call_placed")
        ends = [k for k in kinds if k in CALL_END]
        if len(ends) > 1 or (ends and kinds[-1] not in CALL_END):
            bad.append(f"call {key}: events after its end: {kinds}")
        want = {"call_claimed": "claimed", "call_cancelled": "cancelled"}.get(kinds[-1])
        status = rows.get(key)
        if status is None:
            bad.append(f"call {key}: no row in calls")
        elif want and status != want:
            bad.append(f"call {key}: status {status}, last event {kinds[-1]}")
    return bad, len(chains)


@dataclass
class FaultRecord:
    """One row of the report: a fault, how often, what was lost, recovery times."""

    fault: str
    times: int = 0
    lost: int | None = 0
    recovery_s: list[float] = field(default_factory=list)
    notes: str = ""
    kind: str = "fault"  # fault | bad input | security

    def row(self) -> dict[str, Any]:
        rec = sorted(self.recovery_s)
        return {
            "kind": self.kind,
            "fault": self.fault,
            "times": self.times,
            "lost": self.lost,
            "recovery_max_s": round(rec[-1], 1) if rec else None,
            "recovery_median_s": round(rec[len(rec) // 2], 1) if rec else None,
            "notes": self.notes,
        }


def record(*rows: FaultRecord) -> None:
    """Append report rows to $RELIABILITY_RESULTS (JSON lines) when `python -m tools.reliability`
    runs the tests; a plain `make test` records nothing."""
    path = os.environ.get("RELIABILITY_RESULTS")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.row()) + "\n")


def env_number(name: str, default: float) -> float:
    """A scale knob (cycles, seconds, counts) that `python -m tools.reliability` turns up."""
    return float(os.environ.get(name, default))
