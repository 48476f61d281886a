"""Types shared by the pure cores (phases, calls, alerts, lighting).

The cores never publish anything themselves: every function returns the new state plus a
tuple of `Emit` values, and the daemon turns each `Emit` into an `EventMessage` (adding the
envelope: `v`, `site`, `room`, `seq`, `ts`, `clock_synced`).

Timestamps are persisted with `contract.timefmt` (`dt_to_str` / `dt_from_str`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from contract.messages import CallPriority, EventKind, Phase

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Emit:
    """An event for the daemon to publish on `events` (it adds the envelope).

    Attributes:
        kind: What happened.
        at: When it happened (aware UTC, the `now` the core was given).
        call_id: The call concerned, for call events.
        priority: The call's priority, for call events.
        phase: The (new) session phase, for phase events.
        from_phase: The phase left, for `PHASE_CHANGED`; the phase kept, for `PHASE_REFUSED`.
        session_id: The session concerned, for phase events.
        by: Who asked (staff name), when someone did.
        reason: Human-readable reason (refusals, overrun reminders).
        detail: Extra scalar fields (e.g. `minutes_over`, `response_s`, alert values).
    """

    kind: EventKind
    at: datetime
    call_id: str | None = None
    priority: CallPriority | None = None
    phase: Phase | None = None
    from_phase: Phase | None = None
    session_id: str | None = None
    by: str | None = None
    reason: str | None = None
    detail: Mapping[str, Scalar] = field(default_factory=dict)
