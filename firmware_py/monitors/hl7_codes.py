"""What one OBX row means under a dialect: its vital, its unit, its time.

The tables themselves are data (`dialect_tables/*.toml`, read by `dialect.py`); this module
applies them:

* `resolve(dialect, code, name)`: OBX-3 component 1 (`code`) and 2 (`name`) to a table
  entry. **When the code and the name point at two different vitals** (seen in the wild:
  a gateway sending `188496^MDC_TEMP_AXIL`, a Mindray row `0^RR`), the dialect's
  `conflict` rule decides: `refuse` (the default: the row gives null and the flag
  `<field>_code_name_conflict` for both vitals, never a guess between two vitals), `code`
  (Mindray legacy: its names are display labels, "Sys" is NIBP or IBP) or `name`. A code
  the table does not know falls back to the name, then to a label; a name mapped to `""`
  in a table means "not a vital" (Mindray legacy "PR" may be IBP's pulse).
* `canonical_unit` / `convert`: OBX-6 (MDC, UCUM or plain text) to the contract's unit
  (Fahrenheit and kPa converted; an unknown unit gives None rather than a guess).
* `hl7_time`: an HL7 TS (`YYYYMMDDHHMMSS[.f][+ZZZZ]`) to a datetime; a zero date
  (`00000000000000`, Mindray's "no time") or anything unreadable is None.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from firmware_py.monitors.dialect import Dialect, Entry, label_key, load_dialect

ACCEPTED_UNITS: dict[str, tuple[str, ...]] = {
    "spo2": ("%",),
    "pulse_rate": ("/min",),
    "heart_rate": ("/min",),
    "pi": ("%", "1"),
    "nibp_sys": ("mmHg", "kPa"),
    "nibp_dia": ("mmHg", "kPa"),
    "nibp_mean": ("mmHg", "kPa"),
    "resp_rate": ("/min",),
    "etco2": ("mmHg", "kPa"),
    "temp_c": ("degC", "degF"),
}
MMHG_PER_KPA = 7.500615758
# Fractions of a second with or without the dot: Mindray writes `20260124124738000+0800`.
_TS = re.compile(r"(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?(?:\.?\d{1,4})?([+-]\d{4})?")


@lru_cache(maxsize=1)
def default_dialect() -> Dialect:
    return load_dialect("mdc")


def resolve(dialect: Dialect, code: str, name: str) -> tuple[Entry | None, tuple[str, ...]]:
    """The entry for OBX-3 (`code`, `name`), and the vitals in conflict if refused."""
    code, name = code.strip(), name.strip()
    by_code = dialect.codes.get(code) if code else None
    by_name = None
    if name:
        by_name = dialect.names.get(name.upper()) or dialect.labels.get(label_key(name))
    if by_code is None and code and not code.isdigit():
        by_code = dialect.names.get(code.upper()) or dialect.labels.get(label_key(code))
    both = by_code is not None and by_name is not None and by_code.field and by_name.field
    if both and by_code is not None and by_name is not None and by_code.field != by_name.field:
        if dialect.conflict == "code":
            return by_code, ()
        if dialect.conflict == "name":
            return by_name, ()
        return None, (by_code.field, by_name.field)
    entry = by_code if by_code is not None else by_name
    if entry is None or not entry.field:
        return None, ()
    return entry, ()


def field_for(code: str, refid: str, dialect: Dialect | None = None) -> str | None:
    """The vitals field an OBX-3 (`code`, `refid` = components 1 and 2) stands for."""
    entry, _ = resolve(dialect or default_dialect(), code, refid)
    return entry.field if entry is not None else None


def canonical_unit(components: list[str], dialect: Dialect | None = None) -> str | None:
    """The canonical unit for the components of OBX-6; "" when blank, None if unknown."""
    if not any(c.strip() for c in components):
        return ""
    units = (dialect or default_dialect()).units
    for text in components[:2]:
        unit = units.get(text.strip().upper())
        if unit is not None:
            return unit
    return None


def convert(field: str, value: float, unit: str) -> float | None:
    """`value` in `unit` to the contract unit of `field`; None if the unit does not fit."""
    if unit == "":
        return value
    if unit not in ACCEPTED_UNITS[field]:
        return None
    if unit == "degF":
        return round((value - 32.0) * 5.0 / 9.0, 2)
    if unit == "kPa":
        return round(value * MMHG_PER_KPA, 1)
    return value


@lru_cache(maxsize=512)  # the same stamps repeat on every row of a message
def hl7_time(text: str) -> datetime | None:
    """An HL7 v2 TS as a datetime (aware when it has an offset); None if zero or unreadable.

    Precision may stop at the day or minute (missing parts are their first value).
    """
    match = _TS.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    if int(year) < 1900:
        return None
    try:
        tz = None
        if zone:
            sign = 1 if zone[0] == "+" else -1
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            tz = timezone(sign * offset)
        return datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), tzinfo=tz,
        )
    except ValueError:
        return None


@lru_cache(maxsize=512)
def iso(moment: datetime) -> str:
    """A device time written back as ISO 8601 (with its offset when it had one)."""
    return moment.isoformat(timespec="seconds")
