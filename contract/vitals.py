"""Vitals: the physiological limits, the monitor `Reading`, and a reading as a payload.

This is the one table of limits: the parsers (`firmware_py.monitors`) check every value
against it and the message contract (`contract.messages`) bounds `VitalsMessage` with it.
A value outside them, NaN, an infinity or a protocol's "no value" marker becomes None plus a
quality flag, never 0.

Zero is a fill value on many monitors (no measurement yet), so a 0 is treated as "no
value" for the vitals where a living, monitored patient cannot have 0 (SpO2, rates, blood
pressure, temperature). EtCO2, respiration rate and PI may truly be 0 (apnoea, no
perfusion signal) and are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

VITAL_LIMITS: dict[str, tuple[float, float]] = {
    "spo2": (0, 100),
    "pulse_rate": (0, 350),
    "heart_rate": (0, 350),
    "pi": (0, 100),
    "nibp_sys": (0, 350),
    "nibp_dia": (0, 300),
    "nibp_mean": (0, 300),
    "resp_rate": (0, 200),
    "etco2": (0, 150),
    "temp_c": (15, 46),
}
# Where a temperature was taken (IEEE 11073-10101 MDC_TEMP_* body sites; see
# firmware_py/monitors/dialect_tables/mdc.toml for the codes and their source).
TEMP_SITES: tuple[str, ...] = (
    "body", "core", "skin", "axillary", "oral", "rectal", "ear", "tympanic", "gi", "blood",
)
# A value older than this when it reached the room (its own observation time, OBX-14 or the
# group's OBR-7, against the message's clock) is shown with its age but never raises an
# alert: a stale aperiodic NIBP must not fire as if it had just been measured.
ALERT_MAX_AGE_S = 120.0
# Quality flag of a reading from a monitor in demo / simulation / training mode: shown by
# the board and the logger, ignored by the alerts.
DEMO_FLAG = "demo_mode"
ZERO_MEANS_MISSING = frozenset(
    {"spo2", "pulse_rate", "heart_rate", "nibp_sys", "nibp_dia", "nibp_mean", "temp_c"}
)


def check_vital(name: str, value: float | None, quality: list[str]) -> float | None:
    """`value` if it is a plausible `name`, else None with a flag appended to `quality`."""
    if value is None:
        quality.append(f"{name}_missing")
        return None
    if not math.isfinite(value):
        quality.append(f"{name}_invalid")
        return None
    if value == 0 and name in ZERO_MEANS_MISSING:
        quality.append(f"{name}_zero")
        return None
    lo, hi = VITAL_LIMITS[name]
    if not lo <= value <= hi:
        quality.append(f"{name}_out_of_range")
        return None
    return float(value)


def parse_number(text: str) -> float | None:
    """A decimal number, or None for anything else (dashes, blanks, junk, NaN, inf)."""
    text = text.strip()
    if not text or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return value


# The vitals fields of the message contract, in order (one table: VITAL_LIMITS).
VITAL_NAMES: tuple[str, ...] = tuple(VITAL_LIMITS)


@dataclass(frozen=True, slots=True)
class AlarmDetail:
    """One alarm as the monitor reported it, beside its identifier in `Reading.alarms`.

    `id` is the identifier (also in `Reading.alarms`); `text` the monitor's own words;
    `priority` high/medium/low when known; `kind` physiological/technical; `phase` and
    `state` as in IHE PCD-04 (start/continue/end..., active/inactive/latched...); `time` the
    device's time of the alarm as it sent it (normalised, see `hl7_time`).
    """

    id: str
    text: str | None = None
    priority: str | None = None
    kind: str | None = None
    phase: str | None = None
    state: str | None = None
    time: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "id": self.id, "text": self.text, "priority": self.priority, "kind": self.kind,
            "phase": self.phase, "state": self.state, "time": self.time,
        }


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading from a bedside monitor: what every monitor parser returns.

    A value the monitor does not have is None (with a quality flag saying why), never 0.
    `received_at` is the controller's receive time (seconds since the epoch, from the
    parser's injected clock); `device_time` is the monitor's own clock as it sent it.
    `observed_at` gives, per field, the value's own observation time as the device wrote it
    (HL7: OBX-14, else its group's OBR-7, else MSH-7) and `age_s` how old the value was when
    the message was sent (by the message's own clock), when the protocol says so.
    """

    protocol: str
    received_at: float
    device_time: str | None = None
    spo2: float | None = None
    pulse_rate: float | None = None
    heart_rate: float | None = None
    pi: float | None = None
    nibp_sys: float | None = None
    nibp_dia: float | None = None
    nibp_mean: float | None = None
    resp_rate: float | None = None
    etco2: float | None = None
    temp_c: float | None = None
    alarms: tuple[str, ...] = field(default_factory=tuple)
    quality: tuple[str, ...] = field(default_factory=tuple)
    alarm_raw: str | None = None
    exc_raw: str | None = None
    observed_at: tuple[tuple[str, str], ...] = ()
    age_s: tuple[tuple[str, float], ...] = ()
    temp_site: str | None = None
    alarm_details: tuple[AlarmDetail, ...] = ()

    def vitals(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in VITAL_NAMES}

    def alert_alarms(self) -> tuple[str, ...]:
        """The monitor alarm identifiers room alerts may use: none from a monitor in demo
        mode (its alarms are about a simulated patient)."""
        return () if DEMO_FLAG in self.quality else self.alarms

    def alert_values(self, max_age_s: float = ALERT_MAX_AGE_S) -> dict[str, float | None]:
        """The values the alert rules may use: none from a monitor in demo mode, and none
        whose own observation time was more than `max_age_s` old when it arrived."""
        if DEMO_FLAG in self.quality:
            return {name: None for name in VITAL_NAMES}
        ages = dict(self.age_s)
        return {
            name: None if ages.get(name, 0.0) > max_age_s else getattr(self, name)
            for name in VITAL_NAMES
        }


def vitals_fields(reading: Reading) -> dict[str, Any]:
    """The one mapping of a monitor reading onto the fields of a `VitalsMessage`.

    Everything but the envelope (`site`, `room`, `seq`, `ts`, ...), which the sender adds.
    """
    fields: dict[str, Any] = {
        **reading.vitals(),
        "protocol": reading.protocol,
        "device_time": reading.device_time,
        "alarms": list(reading.alarms),
        "quality": list(reading.quality),
        "alarm_raw": reading.alarm_raw,
        "exc_raw": reading.exc_raw,
    }
    # Optional fields (issue 18): only present when the monitor said something, so a
    # payload from a monitor without per-value times is the same as before.
    if reading.observed_at:
        fields["observed_at"] = dict(reading.observed_at)
    if reading.age_s:
        fields["age_s"] = dict(reading.age_s)
    if reading.temp_site:
        fields["temp_site"] = reading.temp_site
    if reading.alarm_details:
        fields["alarm_details"] = [a.as_dict() for a in reading.alarm_details]
    return fields
