"""The value rows of one HL7 message: each value, its own time, and why one is missing.

How this works: `Rows.add` is given each OBX row that a dialect maps to a vital. The value
is null with a quality flag when OBX-11 says there is none (`<field>_status_x`), OBX-8
carries a null flavour (`<field>_no_value`), OBX-5 is empty (`_missing`), not a number
(`_invalid`), one of the dialect's "no value" sentinels such as Mindray's `-100` or the
IEEE FLOAT NaN 8388607 (`_no_value`), in an unknown unit (`_unit_unknown`) or outside the
contract's limits (`_out_of_range`, `_zero`).

The first usable row of a vital wins and keeps its time: a later row of the same vital
never replaces it (a later invalid row such as `-100` with a zero date is only counted; a
later valid one flags `<field>_duplicate`). Each value's time is OBX-14, else its OBR
group's OBR-7, else MSH-7; `ages()` says how old each value was when the message was
sent, by the message's own clock (MSH-7, else the newest time in the message), so a device
clock in another zone or off by an hour does not matter. A value more than a minute
*newer* than the message is flagged `<field>_time_ahead` and gets no age.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contract.vitals import AlarmDetail, check_vital, parse_number
from firmware_py.monitors import hl7_codes
from firmware_py.monitors.dialect import Dialect, Entry
from firmware_py.monitors.hl7_fields import get

ABNORMAL_FLAGS = {"L": "low", "LL": "low", "<": "low", "H": "high", "HH": "high", ">": "high"}
STICKY = ("_duplicate", "_code_name_conflict", "_time_ahead", "_time_invalid")
AHEAD_TOLERANCE_S = 60.0
MAX_AGE_S = 1e7  # the contract's bound on `age_s` (about 115 days)


class Rows:
    """Values, times and flags of one message, as the rows arrive."""

    def __init__(self, dialect: Dialect, msh_time: datetime | None) -> None:
        self.dialect = dialect
        self.msh_time = msh_time
        self.values: dict[str, float | None] = {}
        self.times: dict[str, datetime] = {}
        self.quality: list[str] = []
        self.temp_site: str | None = None
        self.limit_alarms: list[AlarmDetail] = []
        self._newest: datetime | None = None

    def add(
        self, seg: Any, entry: Entry, flags: list[str], when: datetime | None, raw: str
    ) -> None:
        """One row of `entry`'s vital: OBX-5 component 1 is `raw`, its time `when`."""
        field = entry.field
        if when is not None and (self._newest is None or _later(when, self._newest)):
            self._newest = when
        value = self._value(seg, entry, flags, raw.strip())
        for flag in flags:
            direction = ABNORMAL_FLAGS.get(flag)
            if direction and len(self.limit_alarms) < 32:
                stamp = hl7_codes.iso(when) if when else None
                self.limit_alarms.append(
                    AlarmDetail(id=f"{field}_{direction}", kind="physiological", time=stamp)
                )
        if self.values.get(field) is not None:
            if value is not None and f"{field}_duplicate" not in self.quality:
                self.quality.append(f"{field}_duplicate")
            return
        self.values[field] = value
        if value is None:
            return
        if when is not None:
            self.times[field] = when
        if field == "temp_c":
            self.temp_site = entry.site

    def _value(self, seg: Any, entry: Entry, flags: list[str], raw: str) -> float | None:
        field, dialect = entry.field, self.dialect
        status = get(seg, 11).strip().upper()
        if status in dialect.no_value_status:
            self.quality.append(f"{field}_status_{status.lower()}")
            return None
        if any(flag in dialect.no_value_flags for flag in flags):
            self.quality.append(f"{field}_no_value")
            return None
        if not raw:
            self.quality.append(f"{field}_missing")
            return None
        number = parse_number(raw)
        if number is None:
            self.quality.append(f"{field}_invalid")
            return None
        if number in dialect.sentinels:
            self.quality.append(f"{field}_no_value")
            return None
        unit = hl7_codes.canonical_unit([get(seg, 6, 1), get(seg, 6, 2)], dialect)
        if unit == "":
            unit = entry.unit
        converted = None if unit is None else hl7_codes.convert(field, number * entry.scale, unit)
        if converted is None:
            self.quality.append(f"{field}_unit_unknown")
            return None
        return check_vital(field, converted, self.quality)

    def finish(self) -> list[str]:
        """The quality flags, without the "why missing" of vitals that got a value."""
        have = {f for f, v in self.values.items() if v is not None}
        return [
            q for q in self.quality
            if q.endswith(STICKY) or not any(q.startswith(f"{f}_") for f in have)
        ]

    def ages(self) -> tuple[tuple[str, float], ...]:
        reference = self.msh_time or self._newest
        if reference is None:
            return ()
        out = []
        for field, when in self.times.items():
            age = _seconds_between(reference, when)
            if age < -AHEAD_TOLERANCE_S:
                self.quality.append(f"{field}_time_ahead")
                continue
            if age > MAX_AGE_S:  # a device clock reset, not a measurement: no age
                self.quality.append(f"{field}_time_invalid")
                continue
            out.append((field, round(max(age, 0.0), 1)))
        return tuple(out)


def _seconds_between(later: datetime, earlier: datetime) -> float:
    """`later - earlier` in seconds; a zone-less time is read in the other's zone."""
    if (later.tzinfo is None) != (earlier.tzinfo is None):
        zone = later.tzinfo or earlier.tzinfo
        later, earlier = later.replace(tzinfo=zone), earlier.replace(tzinfo=zone)
    return (later - earlier).total_seconds()


def _later(a: datetime, b: datetime) -> bool:
    return _seconds_between(a, b) > 0
