"""Physiological limits and the one check every parser applies to a vital value.

This is the one table of limits: the message contract (`controller.contract`) imports it
(controller may import firmware_py, not the other way). A value outside them, NaN, an infinity
or a protocol's "no value" marker becomes None plus a quality flag, never 0.

Zero is a fill value on many monitors (no measurement yet), so a 0 is treated as "no
value" for the vitals where a living, monitored patient cannot have 0 (SpO2, rates, blood
pressure, temperature). EtCO2, respiration rate and PI may truly be 0 (apnoea, no
perfusion signal) and are kept.
"""

from __future__ import annotations

import math

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
