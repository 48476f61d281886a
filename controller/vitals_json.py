"""The vitals payload without pydantic on the busiest path (issue 17: a room's CPU budget).

How this works: the room publishes a `VitalsMessage` every second. Building the pydantic
model and dumping its JSON was about a third of the daemon thread's time, for a payload
whose shape never changes. `vitals_payload` writes the same bytes directly, but only for
readings it can prove valid with plain comparisons: every vital None or a finite number
within the contract's limits (`contract.vitals.VITAL_LIMITS`), every text printable ASCII
within its length limit, no optional field (per-value times, ages, alarm details). For
anything else it returns None and the caller takes the pydantic road, which validates,
nulls invalid values with a quality flag and writes the same JSON. The envelope
(`v`, `site`, `room`, `epoch`) is validated once, by pydantic, when the encoder is made.

The field order is the model's, so the bytes equal `model_dump_json` (tests compare the two
on generated readings and check every fast payload against the contract model).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from contract.messages import OPTIONAL_VITALS_FIELDS, VITAL_FIELDS, VitalsMessage
from contract.timefmt import format_ts
from contract.vitals import VITAL_LIMITS

# The body fields in the model's order (the envelope comes first in the model, then these)
_ENVELOPE = ("v", "site", "room", "epoch", "seq", "ts", "clock_synced")
BODY_FIELDS: tuple[str, ...] = tuple(
    name
    for name in VitalsMessage.model_fields
    if name not in _ENVELOPE and name not in OPTIONAL_VITALS_FIELDS
)
_BODY_SET = frozenset(BODY_FIELDS)
_WRITTEN = (*VITAL_FIELDS, "protocol", "device_time", "alarms", "quality", "alarm_raw", "exc_raw")
if BODY_FIELDS != _WRITTEN:  # the model changed: `payload` below must follow it
    raise RuntimeError(f"VitalsMessage fields {BODY_FIELDS} are not the ones written here")
_LIMITS = tuple((name, *VITAL_LIMITS[name]) for name in VITAL_FIELDS)
_TEXT_LIMITS = {"protocol": 32, "device_time": 64, "alarm_raw": 64, "exc_raw": 64}
_LIST_ITEMS = 64  # `alarms` and `quality`: at most 64 entries of at most 64 characters
# serde_json (pydantic) and Python's repr agree on a float's shortest text in this range;
# outside it one writes exponents differently (1e-05 against 1e-5), so pydantic writes it
_PLAIN_MIN, _PLAIN_MAX = 1e-4, 1e15


def _plain_text(value: object, limit: int) -> bool:
    return (
        isinstance(value, str) and len(value) <= limit and value.isascii() and value.isprintable()
    )


def _quoted(text: str) -> str:
    """A printable ASCII string as JSON (json.dumps only when it has a quote or backslash)."""
    if '"' in text or "\\" in text:
        return json.dumps(text)
    return f'"{text}"'


def _number(value: object, lo: float, hi: float) -> float | None:
    """The value as the model keeps it, or None if only pydantic may judge it."""
    if type(value) is int:  # a bool is not a vital
        value = float(value)
    if type(value) is not float or not math.isfinite(value) or not lo <= value <= hi:
        return None
    if value != 0 and not _PLAIN_MIN <= abs(value) < _PLAIN_MAX:
        return None
    return value


class VitalsEncoder:
    """Writes `VitalsMessage` JSON for one room (its envelope validated once, here)."""

    def __init__(self, site: str, room: str, epoch: str):
        probe = VitalsMessage(
            site=site, room=room, epoch=epoch, seq=1, ts=datetime.now().astimezone(),
            clock_synced=False, protocol="probe",
        )  # fmt: skip
        v, site_, room_, epoch_ = (
            json.dumps(x) for x in (probe.v, probe.site, probe.room, probe.epoch)
        )
        self._head = f'{{"v":{v},"site":{site_},"room":{room_},"epoch":{epoch_},"seq":'

    def payload(
        self, seq: int, ts: datetime, clock_synced: bool, fields: Mapping[str, Any]
    ) -> bytes | None:
        """The message's JSON, or None if the fields need pydantic's validation."""
        if type(seq) is not int or seq < 1 or fields.keys() != _BODY_SET:
            return None
        parts = [self._head, str(seq), ',"ts":"', format_ts(ts), '","clock_synced":']
        parts.append("true" if clock_synced is True else "false")
        for name, lo, hi in _LIMITS:
            value = fields[name]
            if value is None:
                parts.append(f',"{name}":null')
                continue
            number = _number(value, lo, hi)
            if number is None:
                return None
            parts.append(f',"{name}":{number!r}')
        for name, limit in _TEXT_LIMITS.items():
            value = fields[name]
            if value is None and name != "protocol":
                parts.append(f',"{name}":null')
            elif _plain_text(value, limit) and (value or name != "protocol"):
                parts.append(f',"{name}":{_quoted(value)}')
            else:
                return None
            if name == "device_time":  # the lists come between device_time and alarm_raw
                for key in ("alarms", "quality"):
                    items = fields[key]
                    if type(items) is not list or len(items) > _LIST_ITEMS:
                        return None
                    if not all(_plain_text(i, 64) for i in items):
                        return None
                    parts.append(f',"{key}":[{",".join(_quoted(i) for i in items)}]')
        parts.append("}")
        return "".join(parts).encode()
