"""What the demo delivered: every room's outbox against the logger's database.

For each room, the outbox knows its numbering epoch, every `seq` it ever created
(1..last_seq), how many of each kind, how many vitals it thinned, and which rows still wait
for a PUBACK. The logger's store knows every `(site, room, epoch, seq)` it stored
(`stored_seqs`). So, per room and its current epoch:

    lost = created seqs - thinned - still pending - stored

and duplicates are stored rows that share a `(site, room, epoch, seq)` (the primary key
forbids them; counted anyway, by the store). A room whose state was lost starts a new
epoch: its old epoch's rows stay in the database and are not counted against the new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.logger.store import LogStore, open_store
from controller.outbox_audit import read_outbox


def summarize(db_path: Path, site: str, room_dirs: dict[str, Path]) -> dict[str, Any]:
    store = open_store(db_path, readonly=True)
    try:
        per_room: dict[str, dict[str, Any]] = {}
        totals = {"vitals_published": 0, "lost": 0, "pending": 0, "thinned": 0}
        for room, state_dir in room_dirs.items():
            box = read_outbox(state_dir / "outbox.sqlite3")
            created, last_seq, thinned = box.created, box.last_seq, box.vitals_thinned
            pending = set(box.pending)
            stored = store.stored_seqs(site, room, box.epoch)
            missing = {s for s in range(1, last_seq + 1) if not box.in_gap(s)} - stored - pending
            lost = max(0, len(missing) - thinned)  # thinned vitals left gaps on purpose
            per_room[room] = {
                "created": last_seq,
                "stored": len(stored),
                "pending": len(pending),
                "thinned": thinned,
                "lost": lost,
            }
            # `created_vitals` counts the vitals up to the last stored seq; those a room sent
            # from memory just before it lost power have seqs in its gaps (issue 17): the
            # ones that arrived are in the log, the others are what a power cut can lose.
            sent_before_crash = 0
            if box.gaps:
                rows = store.vitals(site, room, "1970-01-01T00:00:00.000Z")
                sent_before_crash = sum(
                    1 for r in rows if r["epoch"] == box.epoch and box.in_gap(int(r["seq"]))
                )
            totals["vitals_published"] += created.get("vitals", 0) - thinned + sent_before_crash
            totals["lost"] += lost
            totals["pending"] += len(pending)
            totals["thinned"] += thinned
        counts = store.counts(site)
        nurse_call, types = _nurse_call(store, site, list(room_dirs))
        calls = [
            {
                "room": r["room"],
                "call_id": r["call_id"],
                "type": types.get(str(r["call_id"])),
                "priority": r["priority"],
                "status": r["status"],
                "response_s": r["response_s"],
                "resolved_s": r["resolved_s"],
                "claimed_by": r["claimed_by"],
            }
            for r in reversed(store.calls(site))  # oldest first
        ]
        return {
            "rooms": len(room_dirs),
            "vitals_published": totals["vitals_published"],
            "vitals_logged": counts.vitals,
            "events_logged": counts.events,
            "alerts_raised": counts.alerts_raised,
            "calls": calls,
            "nurse_call": nurse_call,
            "lost": totals["lost"],
            "duplicates": counts.duplicate_seqs,
            "quarantined": counts.quarantined,
            "undelivered_at_stop": totals["pending"],
            "vitals_thinned": totals["thinned"],
            "per_room": per_room,
            "database": str(db_path),
        }
    finally:
        store.close()


EPOCH_START = "1970-01-01T00:00:00.000Z"


def _nurse_call(
    store: LogStore, site: str, rooms: list[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """What the day did of issue 14, counted from the logged events; and each call's type."""
    counts = dict.fromkeys(
        (
            "presence",
            "answered_by_presence",
            "assist",
            "bath",
            "cord_out",
            "cord_back",
            "cord_flapping",
            "cleaning",
            "ignored_in_cleaning",
            "monitor_alarms",
            "reminders",
            "central_blind",
            "central_reached",
        ),
        0,
    )
    types: dict[str, str] = {}
    for room in rooms:
        for e in store.events(site, room, EPOCH_START):
            kind, detail = e["kind"], e["detail"] or {}
            call_type = detail.get("call_type")
            if kind == "call_placed" and e["call_id"]:
                types[str(e["call_id"])] = str(call_type)
                if call_type in ("assist", "bath", "cord_out"):
                    counts[str(call_type)] += 1
            elif kind == "call_cancelled" and detail.get("ended_by") == "presence":
                counts["answered_by_presence"] += 1
            elif kind == "call_cancelled" and detail.get("ended_by") == "cord":
                counts["cord_back"] += 1
            elif kind == "alert_raised" and detail.get("source") == "monitor":
                counts["monitor_alarms"] += 1
            else:
                key = {
                    "presence_started": "presence",
                    "cord_flapping": "cord_flapping",
                    "cleaning_started": "cleaning",
                    "input_ignored": "ignored_in_cleaning",
                    "call_reminder": "reminders",
                    "central_blind": "central_blind",
                    "central_reached": "central_reached",
                }.get(kind)
                if key is not None:
                    counts[key] += 1
    return counts, types
