"""Call-cord / pendant supervision: a normally-closed loop, debounced, flapping reported once.

How this works: a call cord or pendant plugs into a wall jack wired as a normally-closed
loop, so an unplugged cord (or a cut wire) opens it. `changed` is fed every edge of the
loop and `tick` the passing time; both return the new `CordState` and what the room must
do (`Signal`):

* `RAISE`: the loop has stayed open for `debounce_s` (or began flapping): place the
  `cord_out` trouble call.
* `CLEAR`: the loop is closed again (after flapping: has stayed closed for `flap_window_s`):
  end the `cord_out` call.
* `FLAPPING`: `flap_count` edges within `flap_window_s`: one `cord_flapping` event; the
  `cord_out` call then stays up until the loop has been quiet and closed for a whole window,
  so a loose jack is reported once, not a hundred times.

An open shorter than the debounce raises nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from contract.timefmt import dt_from_str, dt_from_str_required, dt_to_str, require_aware


class Signal(enum.Enum):
    RAISE = "raise"
    CLEAR = "clear"
    FLAPPING = "flapping"


@dataclass(frozen=True)
class CordSettings:
    debounce_s: float = 2.0
    flap_window_s: float = 60.0
    flap_count: int = 6


@dataclass(frozen=True)
class CordState:
    """One loop: closed or open since `changed_at`, recent edges, flapping, call raised."""

    closed: bool = True
    changed_at: datetime | None = None
    edges: tuple[datetime, ...] = ()
    flapping: bool = False
    raised: bool = False


def changed(
    state: CordState, closed: bool, now: datetime, settings: CordSettings
) -> tuple[CordState, tuple[Signal, ...]]:
    """The loop closed (True) or opened (False)."""
    now = require_aware(now)
    if closed == state.closed:
        return state, ()
    since = now - timedelta(seconds=settings.flap_window_s)
    edges = (*tuple(t for t in state.edges if t > since)[-(settings.flap_count - 1) :], now)
    new = replace(state, closed=closed, changed_at=now, edges=edges)
    signals: list[Signal] = []
    if not new.flapping and len(edges) >= settings.flap_count:
        new = replace(new, flapping=True)
        signals.append(Signal.FLAPPING)
        if not new.raised:
            new = replace(new, raised=True)
            signals.append(Signal.RAISE)
    elif closed and new.raised and not new.flapping:
        new = replace(new, raised=False)
        signals.append(Signal.CLEAR)
    return new, tuple(signals)


def tick(
    state: CordState, now: datetime, settings: CordSettings
) -> tuple[CordState, tuple[Signal, ...]]:
    """Raise after the debounce; end flapping after a quiet, closed window."""
    now = require_aware(now)
    if state.changed_at is None:
        return state, ()
    quiet_s = (now - state.changed_at).total_seconds()
    if not state.closed and not state.raised and quiet_s >= settings.debounce_s:
        return replace(state, raised=True), (Signal.RAISE,)
    if state.flapping and state.closed and quiet_s >= settings.flap_window_s:
        cleared = replace(state, flapping=False, raised=False, edges=())
        return cleared, ((Signal.CLEAR,) if state.raised else ())
    return state, ()


def next_deadline(state: CordState, settings: CordSettings) -> datetime | None:
    if state.changed_at is None:
        return None
    if not state.closed and not state.raised:
        return state.changed_at + timedelta(seconds=settings.debounce_s)
    if state.flapping and state.closed:
        return state.changed_at + timedelta(seconds=settings.flap_window_s)
    return None


def to_dict(state: CordState) -> dict[str, Any]:
    return {
        "closed": state.closed,
        "changed_at": dt_to_str(state.changed_at),
        "edges": [dt_to_str(t) for t in state.edges],
        "flapping": state.flapping,
        "raised": state.raised,
    }


def from_dict(data: Mapping[str, Any]) -> CordState:
    flags = [data.get(k, d) for k, d in (("closed", True), ("flapping", False), ("raised", False))]
    if not all(isinstance(f, bool) for f in flags):
        raise ValueError("cord flags must be booleans")
    edges = data.get("edges") or []
    if not isinstance(edges, list) or len(edges) > 1000:
        raise ValueError("cord edges must be a short list")
    return CordState(
        closed=flags[0],
        changed_at=dt_from_str(data.get("changed_at")),
        edges=tuple(dt_from_str_required(t) for t in edges),
        flapping=flags[1],
        raised=flags[2],
    )
