"""What the board shows of one session: its time window, and its vitals and events from the
logger's store completed with what the board saw live (the logger may lag, or be absent).

Used by the printable report (`pages.py`) and the session chart API (`api.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contract.timefmt import format_ts

from . import call_proof, history, svg_chart
from . import report_summary as summary
from .context import BoardContext
from .room_parts import event_dict
from .thresholds import thresholds_for


def session_bounds(
    board: BoardContext, room: str, session_id: str | None
) -> tuple[str, str | None, dict[str, Any] | None]:
    """(since, until, sessions row) of a session; the live session when session_id is None."""
    live = board.state.view(room, board.clock())
    sid = session_id or (live or {}).get("session_id")
    row = history.session(board.history, board.site, room, sid) if sid else None
    if row is not None:
        return str(row["started_at"]), row["ended_at"], row
    if live and live.get("phase_since") and live.get("phase") not in (None, "idle"):
        return str(live["phase_since"]), None, None
    return format_ts(datetime.now(UTC) - timedelta(hours=1)), None, None


def report_context(
    board: BoardContext, room: str, session_id: str | None, patient_ref: str | None = None
) -> dict[str, Any]:
    """The template context of the printable session report: the chosen session (the one
    asked for, else the live one, else the room's latest stored one), its summary, charts and
    events in words. `patient_ref` (the caller's, checked) is printed, never looked up."""
    if session_id is None and not (board.state.view(room, board.clock()) or {}).get("session_id"):
        latest = history.sessions(board.history, board.site, room, 1)
        session_id = str(latest[0]["session_id"]) if latest else None
    since, until, row = session_bounds(board, room, session_id)
    rows = history.vitals(board.history, board.site, room, since, until)
    evs = history.events(board.history, board.site, room, since, until)
    if not rows:  # no logger database: what this board saw live
        rows = [
            {
                "seq": v.seq,
                "ts": format_ts(v.ts),
                **{c: getattr(v, c) for c in history.VITAL_COLUMNS},
            }
            for v in board.state.recent_vitals(room)
            if format_ts(v.ts) >= since
        ]
    if not evs:
        evs = [event_dict(e) for e in board.state.recent_events(room) if format_ts(e.ts) >= since]
    call_rows = [
        c for c in history.calls(board.history, board.site, since, until or "9999")
        if c["room"] == room
    ]  # fmt: skip
    phase = (row or {}).get("phase") or "infusion"
    tz = board.config.tz
    charts = svg_chart.session_charts(
        rows, thresholds_for(phase if phase != "idle" else "infusion"), tz
    )
    sid = (
        (row or {}).get("session_id")
        or session_id
        or (board.state.view(room, board.clock()) or {}).get("session_id")
    )
    return {
        "room": room,
        "session": row,
        "session_id": sid,
        "patient_ref": patient_ref,
        "since": since,
        "until": until,
        "since_text": summary.clock(since, tz),
        "until_text": summary.clock(until, tz) if until else "ongoing",
        "day": summary.day_of(since, tz),
        "phases": summary.phases(row, tz),
        "extremes": summary.extremes(rows, tz),
        "alerts": summary.alerts(evs, tz),
        "calls": summary.calls(call_rows, tz),
        "charts": charts,
        "events": summary.event_rows(evs, tz),
        "readings": len(rows),
        "paper": board.config.paper,
        "zone": tz.key,
        "generated": summary.clock(format_ts(datetime.now(UTC)), tz),
    }


def session_payload(board: BoardContext, room: str, session_id: str | None) -> dict[str, Any]:
    """The JSON of `/api/rooms/{room}/session`: stored rows, then what the logger has not yet."""
    since, until, row = session_bounds(board, room, session_id)
    rows = history.vitals(board.history, board.site, room, since, until)
    stored = {(r["epoch"], int(r["seq"])) for r in rows}
    for v in board.state.recent_vitals(room):  # what the logger has not stored yet
        if (v.epoch, v.seq) not in stored and format_ts(v.ts) >= since:
            rows.append({"epoch": v.epoch, "seq": v.seq, "ts": format_ts(v.ts),
                         **{c: getattr(v, c) for c in history.VITAL_COLUMNS}})  # fmt: skip
    evs = history.events(board.history, board.site, room, since, until)
    seen = {(e["epoch"], int(e["seq"])) for e in evs}
    evs += [event_dict(e) for e in board.state.recent_events(room)
            if (e.epoch, e.seq) not in seen and format_ts(e.ts) >= since]  # fmt: skip
    evs.sort(key=lambda e: (e["ts"], e["seq"]))
    live = board.state.view(room, board.clock()) or {}
    return {
        "room": room,
        "session_id": (row or {}).get("session_id") or live.get("session_id"),
        "since": since,
        "until": until,
        "vitals": rows,
        "events": evs,
        "pages": session_pages(board, room, since, until, live),
        "thresholds": thresholds_for(live.get("phase") or "infusion"),
    }


def session_pages(
    board: BoardContext, room: str, since: str, until: str | None, live: dict[str, Any]
) -> list[dict[str, Any]]:
    """The notifier's page attempts for the room's timeline (issue 15): what the logger stored,
    then the live ones of the open calls it has not stored yet; each with its `text`."""
    pages = history.pages(board.history, board.site, room, since, until)
    key = ("call_id", "tier", "recipient", "channel", "attempt", "status")
    seen = {tuple(p[k] for k in key) for p in pages}
    for c in live.get("calls") or []:
        for p in c.get("deliveries") or []:
            if tuple(p[k] for k in key) not in seen and p["at"] >= since:
                pages.append(p)
    for p in pages:
        p["text"] = call_proof.page_text(p)
    pages.sort(key=lambda p: str(p["at"]))
    return pages
