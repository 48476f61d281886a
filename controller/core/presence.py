"""Staff presence and cleaning mode: two timed room modes, pure.

How this works:

* Presence: the presence input toggles it (a wall button or switch today, a badge reader
  later). It starts with `since` and, when `max_s` is set, ends by itself at `until`; a
  second press ends it sooner. Starting presence answers the routine calls in the room (the
  room core ends every call whose row allows `presence`); it never ends `assist` or
  `emergency`.
* Cleaning: started by holding the cancel button or by `cmd/cleaning`, for `minutes`; it
  ends at `until`, on a second hold, or on `cmd/cleaning` with `minutes: 0`. While it
  lasts the room ignores the inputs whose call-type row says so (`in_cleaning = false`):
  each ignored press is an `input_ignored` event.

Both are plain frozen values (None when off) so the core can store them with its state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contract.timefmt import dt_from_str, dt_from_str_required, dt_to_str, require_aware


@dataclass(frozen=True)
class Presence:
    since: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class Cleaning:
    since: datetime
    until: datetime
    by: str | None = None


def start_presence(now: datetime, max_s: float | None) -> Presence:
    now = require_aware(now)
    until = now + timedelta(seconds=max_s) if max_s else None
    return Presence(now, until)


def start_cleaning(now: datetime, minutes: float, by: str | None) -> Cleaning:
    now = require_aware(now)
    return Cleaning(now, now + timedelta(minutes=minutes), by)


def expired(mode: Presence | Cleaning | None, now: datetime) -> bool:
    """True when a timed mode has reached its end."""
    until = mode.until if mode is not None else None
    return until is not None and require_aware(now) >= until


def to_dict(presence: Presence | None, cleaning: Cleaning | None) -> dict[str, Any]:
    return {
        "presence": None
        if presence is None
        else {"since": dt_to_str(presence.since), "until": dt_to_str(presence.until)},
        "cleaning": None
        if cleaning is None
        else {
            "since": dt_to_str(cleaning.since),
            "until": dt_to_str(cleaning.until),
            "by": cleaning.by,
        },
    }


def from_dict(data: Mapping[str, Any]) -> tuple[Presence | None, Cleaning | None]:
    """Rebuild what `to_dict` wrote. Raises ValueError/KeyError/TypeError when corrupt."""
    p, c = data.get("presence"), data.get("cleaning")
    presence = (
        None
        if p is None
        else Presence(dt_from_str_required(p["since"]), dt_from_str(p.get("until")))
    )
    cleaning = None
    if c is not None:
        by = c.get("by")
        if by is not None and not isinstance(by, str):
            raise ValueError("cleaning.by must be a string or null")
        cleaning = Cleaning(dt_from_str_required(c["since"]), dt_from_str_required(c["until"]), by)
    return presence, cleaning
