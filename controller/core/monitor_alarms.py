"""The bedside monitor's own alarms as room alerts, through a mapping table. Pure.

How this works: a monitor parser reports the alarms it sees in `Reading.alarms` (identifier
strings: Masimo ALARM/EXC bit names such as `spo2_low`, `no_sensor`; HL7 OBX-8 flags such
as `spo2_low` and ORU^R40 events such as `pulse_rate_desat`; Nonin `sensor_alarm`).
`severity_of` maps each identifier to an IEC 60601-1-8 priority (`high`, `medium`, `low`)
or `ignore`: the room's `[monitor_alarms]` config first, then `DEFAULT_ALARM_MAP` (first
matching glob wins), then the default for an unknown identifier (`medium`: a monitor alarm
nobody mapped still reaches staff).

Each reading is the monitor's current word: an identifier that appears raises an alert
(`alert_raised`, detail `source: monitor`), one that is gone clears it (`alert_cleared`).
A reading without alarms clears them all, as the monitor has. The room never silences or
acknowledges anything on the monitor (it has no way to, by design); `alarm_silenced` is
the monitor telling us its own audio is paused, so it is ignored rather than cleared.
A monitor that falls silent keeps its last alarms up until it reports again: its silence is
itself shown (monitor trouble), and an alarm is never cleared by a missing reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from contract.messages import ActiveAlert, EventKind
from contract.timefmt import dt_from_str_required, dt_to_str, require_aware
from controller.core.emit import Emit

Severity = Literal["high", "medium", "low"]
Mapped = Literal["high", "medium", "low", "ignore"]

# Identifier glob -> priority, first match wins (after the room's exact entries).
DEFAULT_ALARM_MAP: tuple[tuple[str, Mapped], ...] = (
    ("alarm_silenced", "ignore"),  # status of the monitor's own audio, not an alarm
    ("spo2_low", "high"),
    ("*desat*", "high"),
    ("*apnea*", "high"),
    ("*asystole*", "high"),
    ("*_low", "medium"),
    ("*_high", "medium"),
    ("alarm_active", "medium"),
    ("low_battery", "low"),
    ("*sensor*", "low"),
    ("*cable*", "low"),
    ("*lead*", "low"),
    ("low_perfusion", "low"),
    ("pulse_search", "low"),
    ("interference", "low"),
    ("ambient_light", "low"),
    ("low_signal_iq", "low"),
)
UNKNOWN_ALARM: Severity = "medium"


@dataclass(frozen=True)
class AlarmSettings:
    overrides: Mapping[str, Mapped] = field(default_factory=dict)
    unknown: Severity = UNKNOWN_ALARM


def severity_of(alarm: str, settings: AlarmSettings) -> Mapped:
    if alarm in settings.overrides:
        return settings.overrides[alarm]
    for pattern, level in DEFAULT_ALARM_MAP:
        if fnmatchcase(alarm, pattern):
            return level
    return settings.unknown


@dataclass(frozen=True)
class AlarmState:
    active: Mapping[str, ActiveAlert] = field(default_factory=dict)


def evaluate(
    state: AlarmState, alarms: Iterable[str], now: datetime, settings: AlarmSettings
) -> tuple[AlarmState, tuple[Emit, ...]]:
    """The monitor's current alarms: raise the new ones, clear those gone."""
    now = require_aware(now)
    current: dict[str, Severity] = {}
    for alarm in alarms:
        level = severity_of(alarm, settings)
        if level != "ignore":
            current[alarm[:64]] = level
    emits: list[Emit] = []
    active = dict(state.active)
    for name in sorted(set(active) - set(current)):
        gone = active.pop(name)
        emits.append(_emit(EventKind.ALERT_CLEARED, now, gone))
    for name, level in current.items():
        old = active.get(name)
        if old is not None and old.severity == level:
            continue
        alert = ActiveAlert(name=name, field="monitor", severity=level, since=now, source="monitor")
        active[name] = alert
        emits.append(_emit(EventKind.ALERT_RAISED, now, alert))
    if not emits:
        return state, ()
    return AlarmState(active), tuple(emits)


def _emit(kind: EventKind, now: datetime, alert: ActiveAlert) -> Emit:
    return Emit(
        kind,
        now,
        reason=f"monitor alarm {alert.name}",
        detail={
            "name": alert.name,
            "source": "monitor",
            "severity": alert.severity,
            "field": "monitor",
        },
    )


def active_list(state: AlarmState) -> list[ActiveAlert]:
    return [state.active[k] for k in sorted(state.active)]


def to_dict(state: AlarmState) -> dict[str, Any]:
    return {
        name: {"severity": a.severity, "since": dt_to_str(a.since)}
        for name, a in state.active.items()
    }


def from_dict(data: Mapping[str, Any]) -> AlarmState:
    active = {}
    for name, item in data.items():
        if item["severity"] not in ("high", "medium", "low"):
            raise ValueError("bad monitor alarm severity")
        active[str(name)] = ActiveAlert(
            name=str(name),
            field="monitor",
            severity=item["severity"],
            since=dt_from_str_required(item["since"]),
            source="monitor",
        )
    return AlarmState(active)
