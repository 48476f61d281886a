"""Parts of a room's view that read one message each: its vitals, its device trouble, an
event (pure; `live.room_view` puts them together)."""

from __future__ import annotations

from typing import Any

from contract.messages import EventMessage, PeripheralStatus, VitalsMessage
from contract.timefmt import format_ts
from contract.vitals import DEMO_FLAG

OUTBOX_TROUBLE_DEPTH = 50


def _ts(value: Any) -> str | None:
    return format_ts(value) if value is not None else None


def vitals_view(v: VitalsMessage) -> dict[str, Any]:
    """The numbers a tile shows; heart rate from ECG when present, else pulse rate."""
    hr = v.heart_rate if v.heart_rate is not None else v.pulse_rate
    return {
        "seq": v.seq,
        "ts": _ts(v.ts),
        "spo2": v.spo2,
        "hr": hr,
        "hr_source": "ECG" if v.heart_rate is not None else "pulse",
        "nibp_sys": v.nibp_sys,
        "nibp_dia": v.nibp_dia,
        "nibp_mean": v.nibp_mean,
        "rr": v.resp_rate,
        "etco2": v.etco2,
        "alarms": list(v.alarms),
    }


def trouble(r: Any, now: float) -> list[str]:
    """Device trouble a technician must see, as short sentences."""
    out: list[str] = []
    if r.state is not None and r.state.cords_open:
        out.append("call cord out: " + ", ".join(r.state.cords_open))
    if r.vitals is not None and DEMO_FLAG in r.vitals.quality:
        out.append("monitor in demo mode: not patient data")
    h = r.health
    if h is not None:
        if h.monitor.status not in (PeripheralStatus.OK, PeripheralStatus.DISABLED):
            out.append(f"monitor {h.monitor.status.value}")
        if h.buttons not in (PeripheralStatus.OK, PeripheralStatus.DISABLED):
            out.append(f"buttons {h.buttons.value}")
        if h.lights not in (PeripheralStatus.OK, PeripheralStatus.DISABLED):
            out.append(f"lights {h.lights.value}")
        if h.outbox.depth >= OUTBOX_TROUBLE_DEPTH:
            out.append(f"outbox {h.outbox.depth} queued")
        if not h.clock_synced:
            out.append("clock not synced")
        if h.status_code and h.status_text and h.status_text != "ok":
            text = f"status {h.status_code}: {h.status_text}"
            if text not in out:
                out.append(text)
    return out


def event_dict(e: EventMessage) -> dict[str, Any]:
    return {
        "epoch": e.epoch,
        "seq": e.seq,
        "ts": _ts(e.ts),
        "kind": e.kind.value,
        "call_id": e.call_id,
        "priority": e.priority.value if e.priority else None,
        "phase": e.phase.value if e.phase else None,
        "from_phase": e.from_phase.value if e.from_phase else None,
        "by": e.by,
        "reason": e.reason,
        "detail": dict(e.detail),
    }
