"""What the board shows of one session: its time window, and its vitals and events from the
logger's store completed with what the board saw live (the logger may lag, or be absent).

Used by the printable report (`pages.py`) and the session chart API (`api.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contract.timefmt import format_ts

from . import history, svg_chart
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


def report_context(board: BoardContext, room: str, session_id: str | None) -> dict[str, Any]:
    """The template context of the printable session report."""
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
    phase = (row or {}).get("phase") or "infusion"
    charts = svg_chart.session_charts(
        rows, thresholds_for(phase if phase != "idle" else "infusion")
    )
    return {
        "room": room,
        "session": row,
        "session_id": (row or {}).get("session_id")
        or session_id
        or (board.state.view(room, board.clock()) or {}).get("session_id"),
        "since": since,
        "until": until,
        "charts": charts,
        "events": evs,
        "readings": len(rows),
        "generated": format_ts(datetime.now(UTC)),
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
        "thresholds": thresholds_for(live.get("phase") or "infusion"),
    }
