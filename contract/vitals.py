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
class Reading:
    """One reading from a bedside monitor: what every monitor parser returns.

    A value the monitor does not have is None (with a quality flag saying why), never 0.
    `received_at` is the controller's receive time (seconds since the epoch, from the
    parser's injected clock); `device_time` is the monitor's own clock as it sent it.
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

    def vitals(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in VITAL_NAMES}


def vitals_fields(reading: Reading) -> dict[str, Any]:
    """The one mapping of a monitor reading onto the fields of a `VitalsMessage`.

    Everything but the envelope (`site`, `room`, `seq`, `ts`, ...), which the sender adds.
    """
    return {
        **reading.vitals(),
        "protocol": reading.protocol,
        "device_time": reading.device_time,
        "alarms": list(reading.alarms),
        "quality": list(reading.quality),
        "alarm_raw": reading.alarm_raw,
        "exc_raw": reading.exc_raw,
    }
