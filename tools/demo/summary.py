"""What the demo delivered: every room's outbox against the logger's database.

For each room, the outbox knows every `seq` it ever created (1..last_seq), how many of each
kind, how many vitals it thinned, and which rows still wait for a PUBACK. The logger's
`messages` table holds every `(site, room, seq)` it stored. So, per room:

    lost = created seqs - thinned - still pending - stored

and duplicates are stored rows that share a `(site, room, seq)` (the primary key forbids
them; counted anyway, from the table itself).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from controller.outbox import read_outbox


def summarize(db_path: Path, site: str, room_dirs: dict[str, Path]) -> dict[str, Any]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        per_room: dict[str, dict[str, Any]] = {}
        totals = {"vitals_published": 0, "lost": 0, "pending": 0, "thinned": 0}
        for room, state_dir in room_dirs.items():
            box = read_outbox(state_dir / "outbox.sqlite3")
            created, last_seq, thinned = box.created, box.last_seq, box.vitals_thinned
            pending = set(box.pending)
            stored = {
                r[0]
                for r in db.execute(
                    "SELECT seq FROM messages WHERE site = ? AND room = ?", (site, room)
                )
            }
            missing = set(range(1, last_seq + 1)) - stored - pending
            lost = max(0, len(missing) - thinned)  # thinned vitals left gaps on purpose
            per_room[room] = {
                "created": last_seq,
                "stored": len(stored),
                "pending": len(pending),
                "thinned": thinned,
                "lost": lost,
            }
            totals["vitals_published"] += created.get("vitals", 0) - thinned
            totals["lost"] += lost
            totals["pending"] += len(pending)
            totals["thinned"] += thinned

        def one(sql: str, *args: Any) -> int:
            return int(db.execute(sql, args).fetchone()[0])

        calls = [
            {
                "room": r[0],
                "call_id": r[1],
                "priority": r[2],
                "status": r[3],
                "response_s": r[4],
                "resolved_s": r[5],
                "claimed_by": r[6],
            }
            for r in db.execute(
                "SELECT room, call_id, priority, status, response_s, resolved_s, claimed_by "
                "FROM calls WHERE site = ? ORDER BY placed_at",
                (site,),
            )
        ]
        return {
            "rooms": len(room_dirs),
            "vitals_published": totals["vitals_published"],
            "vitals_logged": one("SELECT COUNT(*) FROM vitals WHERE site = ?", site),
            "events_logged": one("SELECT COUNT(*) FROM events WHERE site = ?", site),
            "alerts_raised": one(
                "SELECT COUNT(*) FROM events WHERE site = ? AND kind = 'alert_raised'", site
            ),
            "calls": calls,
            "lost": totals["lost"],
            "duplicates": one(
                "SELECT COUNT(*) - COUNT(DISTINCT site || '/' || room || '/' || seq) "
                "FROM messages WHERE site = ?",
                site,
            ),
            "quarantined": one("SELECT COUNT(*) FROM quarantine"),
            "undelivered_at_stop": totals["pending"],
            "vitals_thinned": totals["thinned"],
            "per_room": per_room,
            "database": str(db_path),
        }
    finally:
        db.close()
