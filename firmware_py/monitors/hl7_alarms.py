"""Alarm content of HL7 messages: IHE PCD-04 (ORU^R40) alerts and vendor alarm messages.

How this works: `AlertCollector` is given every OBX row of a message. IHE PCD-04 spreads
one alert over several rows that share the OBX-4 prefix (`1.7.0.196680.1`, `.2`, ...):
the event (`196616^MDC_EVT_ALARM` with the event code in OBX-5, or the event itself in
OBX-3 such as `MDC_EVT_LO`), its source, phase (68481), state (68482), priority (68484:
PH/PM/PL) and type (68485: SP physiological, ST technical); OBX-8 may repeat priority and
type (`A~PL~ST`). Codes and the shape: the Mindray PCD-04 sample in
`panda666789/mindray_hl7_pipeline` docs/sample_data/raw_hl7_sample.hl7 and its parser.

`vendor_alarm` reads Mindray's legacy alarm messages (MSH-10 54 physiological, 56
technical; `10076^**T1 Too Low`, `205^SpO2 Sensor Off`; see mindray_legacy.toml).

Identifiers (`Reading.alarms`, documented in docs/MONITORS.md for the room-alert mapping):
`<field>_<event>` for an alert on a vital (`spo2_lo`), `tech_<event>` for a technical one
(`tech_lead_off`), `evt_<event>` otherwise; `<field>_low` / `<field>_high` from OBX-8
L/H flags and from Mindray's "<label> TOO LOW/HIGH"; `mindray_phys_<code>` and
`mindray_tech_<code>` for every Mindray legacy alarm.
"""

from __future__ import annotations

import re

from contract.vitals import AlarmDetail
from firmware_py.monitors.dialect import Dialect, label_key

PRIORITY = {"PH": "high", "PM": "medium", "PL": "low"}
KIND = {"SP": "physiological", "ST": "technical"}
ATTRS = {
    "68480": "source", "MDC_ATTR_ALERT_SOURCE": "source",
    "68481": "phase", "MDC_ATTR_EVENT_PHASE": "phase",
    "68482": "state", "MDC_ATTR_ALARM_STATE": "state",
    "68484": "priority", "MDC_ATTR_ALARM_PRIORITY": "priority",
    "68485": "type", "MDC_ATTR_ALERT_TYPE": "type",
}
EVENT_ALARM = ("196616", "MDC_EVT_ALARM")
MAX_ALARMS = 32
_SLUG = re.compile(r"[^a-z0-9]+")
_LIMIT_TEXT = re.compile(r"^(?P<label>.+?)\s+TOO\s+(?P<dir>HIGH|LOW)\s*$", re.IGNORECASE)


def slug(text: str) -> str:
    return _SLUG.sub("_", text.lower()).strip("_")[:40]


class AlertCollector:
    """Gathers the alert rows of one message, grouped by OBX-4 prefix."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, str]] = {}
        self.events: list[str] = []

    def add(
        self, subid: str, code: str, refid: str, value: tuple[str, str],
        flags: list[str], time: str | None, field: str | None,
    ) -> None:
        code, refid = code.strip(), refid.strip().upper()
        key = subid.strip().rsplit(".", 1)[0] if "." in subid else subid.strip()
        event = ""
        if code == EVENT_ALARM[0] or refid == EVENT_ALARM[1]:
            event = (value[1] or value[0]).strip().upper()
        elif refid.startswith("MDC_EVT_"):
            event = refid
        else:
            for text in value:
                if text.strip().upper().startswith("MDC_EVT_"):
                    event = text.strip().upper()
        attr = ATTRS.get(code) or ATTRS.get(refid)
        if not (event or attr or field):
            return
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_ALARMS:
                return
            group = self._groups.setdefault(key, {})
        if event:
            group["event"] = event
            group["text"] = (value[1] or value[0]).strip()[:128]
            if len(self.events) < MAX_ALARMS:
                self.events.append(event)
            for flag in flags:
                if flag in PRIORITY:
                    group.setdefault("priority", PRIORITY[flag])
                if flag in KIND:
                    group.setdefault("kind", KIND[flag])
            if time:
                group.setdefault("time", time)
        if attr:
            text = value[0].strip()
            if attr == "priority" and text.upper() in PRIORITY:
                group["priority"] = PRIORITY[text.upper()]
            elif attr == "type" and text.upper() in KIND:
                group["kind"] = KIND[text.upper()]
            elif attr in ("phase", "state") and text:
                group[attr] = text[:64]
        if field:
            group.setdefault("field", field)
            if time:
                group.setdefault("time", time)

    def details(self, message_time: str | None) -> list[AlarmDetail]:
        out = []
        for group in self._groups.values():
            event = group.get("event")
            if not event:
                continue
            name = slug(event[len("MDC_EVT_"):] if event.startswith("MDC_EVT_") else event)
            kind = group.get("kind")
            if kind == "technical":
                ident = f"tech_{name}"
            elif group.get("field"):
                ident = f"{group['field']}_{name}"
            else:
                ident = f"evt_{name}"
            out.append(AlarmDetail(
                id=ident[:64], text=group.get("text") or None, priority=group.get("priority"),
                kind=kind, phase=group.get("phase"), state=group.get("state"),
                time=group.get("time") or message_time,
            ))
        return out


def vendor_alarm(
    dialect: Dialect, kind: str, value: tuple[str, str], time: str | None
) -> list[AlarmDetail]:
    """One row of a Mindray legacy alarm message (`10076^**T1 Too Low`): its alarms."""
    code, raw = value[0].strip(), value[1].strip()
    if not raw or code in ("", "0"):
        return []
    stars = len(raw) - len(raw.lstrip("*"))
    text = raw.lstrip("*").strip()[:128]
    priority = None
    if dialect.alarm_priority_prefix and stars:
        priority = {3: "high", 2: "medium", 1: "low"}.get(min(stars, 3))
    physiological = kind == "alarm_physiological"
    label = "mindray_phys" if physiological else "mindray_tech"
    common = {
        "text": text or None, "priority": priority, "time": time,
        "kind": "physiological" if physiological else "technical",
    }
    out = [AlarmDetail(id=f"{label}_{slug(code)}"[:64], **common)]
    match = _LIMIT_TEXT.match(text) if physiological else None
    if match:
        field = dialect.alarm_labels.get(label_key(match["label"]))
        if field:
            out.append(AlarmDetail(id=f"{field}_{match['dir'].lower()}", **common))
    return out
