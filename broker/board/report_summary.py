"""The session report's words and numbers: the summary it opens with and each event as a sentence.

Pure functions over the rows the store (or the board's live state) gives: no I/O. Times stay
the stored RFC 3339 UTC text until `clock()` writes them for people, in the site's zone
(`tz`, named: `contract.sitetime`).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from broker.logger.fhir import CALL_TYPE_WORDS, call_response
from contract import sitetime
from contract.timefmt import parse_ts

PHASE_WORDS = {
    "idle": "Idle", "pre_check": "Pre-check", "infusion": "Infusion",
    "recovery": "Recovery", "discharge_ready": "Ready for discharge",
}  # fmt: skip
FIELD_WORDS = {
    "spo2": "SpO2", "pulse_rate": "pulse", "heart_rate": "heart rate", "nibp_sys": "systolic BP",
    "nibp_dia": "diastolic BP", "nibp_mean": "mean BP", "resp_rate": "respiratory rate",
    "etco2": "EtCO2", "temp_c": "temperature", "pi": "perfusion index",
}  # fmt: skip
UNITS = {"spo2": "%", "pulse_rate": "/min", "heart_rate": "/min", "nibp_sys": "mmHg",
         "nibp_dia": "mmHg", "nibp_mean": "mmHg", "resp_rate": "/min", "etco2": "mmHg",
         "temp_c": "°C", "pi": "%"}  # fmt: skip
_PHASE_COLUMNS = (
    ("pre_check", "pre_check_at"), ("infusion", "infusion_at"), ("recovery", "recovery_at"),
    ("discharge_ready", "discharge_ready_at"),
)  # fmt: skip


def clock(ts: str | None, tz: ZoneInfo) -> str:
    """A stored time for people: `2026-03-01 09:12:05 EST` (24-hour, the site's zone named)."""
    return sitetime.stamp(ts, tz) if ts else "-"


def clock_short(ts: str | None, tz: ZoneInfo) -> str:
    """`09:12:05 EST`."""
    return sitetime.hms(ts, tz) if ts else "-"


def duration(seconds: float | None) -> str:
    """`42 s`, `1 min 05 s`, `1 h 02 min`."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return (parse_ts(b) - parse_ts(a)).total_seconds()


def phases(session: dict[str, Any] | None, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Each phase the session went through: name, start, end, how long."""
    if not session:
        return []
    marks = [(name, session.get(col)) for name, col in _PHASE_COLUMNS if session.get(col)]
    marks.sort(key=lambda m: str(m[1]))
    out = []
    for i, (name, start) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else session.get("ended_at")
        out.append({"phase": PHASE_WORDS[name], "start": clock_short(start, tz),
                    "end": clock_short(end, tz),
                    "duration": duration(_between(start, end)) if end else "ongoing"})  # fmt: skip
    return out


def _number(v: float) -> str:
    return f"{v:g}"


def extremes(vitals: list[dict[str, Any]], tz: ZoneInfo) -> dict[str, str]:
    """Lowest SpO2 and highest NIBP (by systolic) of the session, with their times."""
    out = {"lowest_spo2": "no SpO2 measured", "highest_nibp": "no blood pressure measured"}
    spo2 = [r for r in vitals if r.get("spo2") is not None]
    if spo2:
        low = min(spo2, key=lambda r: (r["spo2"], r["ts"]))
        out["lowest_spo2"] = f"{_number(low['spo2'])} % at {clock(low['ts'], tz)}"
    bp = [r for r in vitals if r.get("nibp_sys") is not None]
    if bp:
        high = max(bp, key=lambda r: (r["nibp_sys"], r.get("nibp_dia") or 0))
        dia = f"/{_number(high['nibp_dia'])}" if high.get("nibp_dia") is not None else ""
        out["highest_nibp"] = f"{_number(high['nibp_sys'])}{dia} mmHg at {clock(high['ts'], tz)}"
    return out


def alerts(events: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, str]]:
    """Every vital alert: what, when raised and cleared, how long, the value that raised it."""
    open_: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for e in events:
        detail = e.get("detail") or {}
        name = str(detail.get("name") or "alert")
        if e["kind"] == "alert_raised":
            open_[name] = len(out)
            out.append({"what": alert_words(detail, e.get("reason")),
                        "raised": clock_short(e["ts"], tz),
                        "cleared": "still active", "duration": "-", "_ts": e["ts"]})  # fmt: skip
        elif e["kind"] == "alert_cleared" and name in open_:
            row = out[open_.pop(name)]
            row["cleared"] = clock_short(e["ts"], tz)
            row["duration"] = duration(_between(row["_ts"], e["ts"]))
    for row in out:
        del row["_ts"]
    return out


def alert_words(detail: dict[str, Any], reason: Any = None) -> str:
    """`SpO2 88 % below the limit 90 %`."""
    field = str(detail.get("field") or "")
    value, limit = detail.get("value"), detail.get("threshold")
    if field in FIELD_WORDS and isinstance(value, int | float) and isinstance(limit, int | float):
        unit = UNITS.get(field, "")
        side = "below" if value < limit else "above"
        what = f"{FIELD_WORDS[field]} {_number(value)} {unit}"
        return f"{what} {side} the limit {_number(limit)} {unit}"
    return str(reason or detail.get("name") or "alert")


def calls(rows: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, str]]:
    """Every call of the session, oldest first, with who answered and how fast."""
    out = []
    for r in sorted(rows, key=lambda r: str(r.get("placed_at") or "")):
        kind = str(r.get("type") or "normal")  # the call's type, when the contract carries one
        answered = call_response(r)
        if answered is None:
            response = "not answered"
        elif answered[1] == "claimed":
            response = f"{duration(answered[0])} (claimed by {r.get('claimed_by') or 'staff'})"
        else:
            response = f"{duration(answered[0])} (answered in the room)"
        out.append({
            "what": f"{CALL_TYPE_WORDS.get(kind, kind)}, {r.get('priority') or 'normal'} priority",
            "placed": clock_short(r.get("placed_at"), tz),
            "response": response,
            "escalated": clock_short(r["escalated_at"], tz) if r.get("escalated_at") else "no",
            "ended": clock_short(r["cancelled_at"], tz) if r.get("cancelled_at") else "still open",
        })  # fmt: skip
    return out


def event_words(e: dict[str, Any]) -> str:
    """One event as a sentence for the report (no internal field names)."""
    kind: str = str(e["kind"])
    detail = e.get("detail") or {}
    by = f" by {e['by']}" if e.get("by") else ""
    priority = f" ({e['priority']} priority)" if e.get("priority") else ""
    phase = PHASE_WORDS.get(str(e.get("phase")), str(e.get("phase") or ""))
    before = PHASE_WORDS.get(str(e.get("from_phase")), "")
    words: str = {
        "daemon_started": "Room controller started",
        "call_placed": f"{CALL_TYPE_WORDS.get(str(detail.get('type')), 'Call')} placed{priority}",
        "call_priority_raised": f"Call priority raised{priority}",
        "call_claimed": f"Call claimed{by}",
        "call_escalated": f"Call escalated{priority}: nobody had claimed it",
        "call_cancelled": f"Call ended in the room{by}",
        "phase_changed": f"Phase: {before} to {phase}" if before else f"Phase: {phase}",
        "phase_refused": f"Phase change to {phase} refused",
        "phase_overrun": f"{phase or 'Phase'} ran over its planned time",
        "alert_raised": f"Alert: {alert_words(detail, e.get('reason'))}",
        "alert_cleared": f"Alert cleared: {FIELD_WORDS.get(str(detail.get('field')), '')} back "
        "within limits".replace("  ", " "),
        "scene_changed": "Lighting changed",
        "command_refused": f"A staff command was refused{by}",
        "monitor_link_lost": "Monitor disconnected",
        "monitor_link_restored": "Monitor reconnected",
        "clock_stepped": "The room's clock was corrected",
        "call_reminder": "Reminder: a claimed call is not yet cleared in the room",
        "presence_started": f"Staff in the room{by}",
        "presence_ended": "Staff left the room",
        "cord_flapping": "The call cord's loop keeps opening and closing: check the cord",
        "cleaning_started": "Cleaning mode started",
        "cleaning_ended": "Cleaning mode ended",
        "input_ignored": "A press was ignored (cleaning mode)",
    }.get(kind, kind.replace("_", " ").capitalize())
    if kind in ("phase_refused", "command_refused") and e.get("reason"):
        words += f": {e['reason']}"
    return words


def event_rows(events: list[dict[str, Any]], tz: ZoneInfo) -> list[dict[str, str]]:
    return [{"time": clock_short(e["ts"], tz), "what": event_words(e)} for e in events]


def day_of(ts: str | None, tz: ZoneInfo) -> str:
    """`Monday 30 November 2026`: the site's local day of a time."""
    return sitetime.local(ts, tz).strftime("%A %d %B %Y") if ts else ""
