"""Types shared by the pure cores (phases, calls, alerts, lighting).

The cores never publish anything themselves: every function returns the new state plus a
tuple of `Emit` values, and the daemon turns each `Emit` into an `EventMessage` (adding the
envelope: `v`, `site`, `room`, `seq`, `ts`, `clock_synced`).

Also here: the small helpers the cores use to persist datetimes as JSON-safe strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.contract import CallPriority, EventKind, Phase

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


def require_aware(now: datetime) -> datetime:
    """Return `now` converted to UTC.

    Args:
        now: A timezone-aware datetime.

    Returns:
        The same instant in UTC.

    Raises:
        ValueError: If `now` is naive. This is a programming error in the caller (the
            daemon's clock), not a device or staff input, so it is the one place a core
            raises.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the cores need an aware datetime (UTC)")
    return now.astimezone(UTC)


def dt_to_str(value: datetime | None) -> str | None:
    """Serialise an aware datetime (or None) to an ISO 8601 string for persistence."""
    if value is None:
        return None
    return require_aware(value).isoformat()


def dt_from_str(value: object) -> datetime | None:
    """Parse what `dt_to_str` wrote back to an aware UTC datetime (None stays None).

    Raises:
        ValueError: If the value is not None and not an ISO 8601 string with a zone.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return require_aware(datetime.fromisoformat(value))


def dt_from_str_required(value: object) -> datetime:
    """Like `dt_from_str` but the value must be present.

    Raises:
        ValueError: If the value is None or not an ISO 8601 string with a zone.
    """
    parsed = dt_from_str(value)
    if parsed is None:
        raise ValueError("a required timestamp is missing")
    return parsed
