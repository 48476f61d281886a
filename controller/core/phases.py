"""Session phases of one treatment room, as a pure state machine.

How this works:

* `SessionState` is frozen; `request` (staff `cmd/phase`) and `tick` (time passing)
  return a new state plus the events (`Emit`) to publish. `now` is an argument (aware UTC).
* The legal moves are the table `TRANSITIONS`::

      idle            -> pre_check            (a new session starts; session_id assigned)
      pre_check       -> infusion, idle       (idle = session aborted before infusion)
      infusion        -> recovery
      recovery        -> discharge_ready      (refused before min_recovery_end)
      discharge_ready -> idle                 (session ends; session_id cleared)

* An illegal request never raises: the state is unchanged, `refused` holds a human reason
  and one `PHASE_REFUSED` emit carries it (`phase` = requested, `from_phase` = current).
* Entering pre_check, infusion or recovery sets `planned_end` (settings, or the request's
  `planned_minutes`). A planned recovery shorter than the minimum is lengthened to it.
  When `now >= planned_end`, `tick` emits `PHASE_OVERRUN` and sets `overrun`, then reminds
  every `reminder_every_s` (anchored on `planned_end`, so a late tick does not shift the
  schedule and a long outage yields one reminder, not a burst).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from contract.messages import PHASE_TRANSITIONS, EventKind, Phase
from contract.timefmt import dt_from_str, dt_from_str_required, dt_to_str, require_aware
from controller.core.emit import Emit

TRANSITIONS: dict[Phase, frozenset[Phase]] = PHASE_TRANSITIONS  # the contract's one table

# Phases that have a planned duration (and so can overrun).
TIMED_PHASES: frozenset[Phase] = frozenset({Phase.PRE_CHECK, Phase.INFUSION, Phase.RECOVERY})

# Order used when listing allowed targets in a refusal, so messages are stable.
_ORDER: tuple[Phase, ...] = tuple(Phase)

Emits = tuple[Emit, ...]


@dataclass(frozen=True)
class PhaseSettings:
    """Planned durations and reminder period, in seconds."""

    planned_pre_check_s: float = 15 * 60
    planned_infusion_s: float = 50 * 60
    planned_recovery_s: float = 45 * 60
    min_recovery_s: float = 30 * 60
    reminder_every_s: float = 5 * 60

    def planned_s(self, phase: Phase) -> float | None:
        """Planned duration of `phase` in seconds, or None for untimed phases."""
        return {
            Phase.PRE_CHECK: self.planned_pre_check_s,
            Phase.INFUSION: self.planned_infusion_s,
            Phase.RECOVERY: self.planned_recovery_s,
        }.get(phase)


@dataclass(frozen=True)
class SessionState:
    """Where the room's session is.

    Attributes:
        phase: Current phase.
        session_id: Id of the running session; None in idle.
        since: When the current phase was entered.
        planned_end: When the current phase should end (timed phases only).
        min_recovery_end: Earliest discharge time (recovery only).
        overrun: True once the phase has run past `planned_end`.
        next_reminder_at: When the next overrun reminder is due (after the first one).
    """

    phase: Phase
    session_id: str | None
    since: datetime
    planned_end: datetime | None
    min_recovery_end: datetime | None
    overrun: bool
    next_reminder_at: datetime | None


@dataclass(frozen=True)
class PhaseOutcome:
    """Result of `request`: new state, events to publish, refusal reason or None."""

    state: SessionState
    emits: Emits
    refused: str | None = None


def initial(now: datetime) -> SessionState:
    """An idle room with no session, idle since `now`."""
    return SessionState(
        phase=Phase.IDLE,
        session_id=None,
        since=require_aware(now),
        planned_end=None,
        min_recovery_end=None,
        overrun=False,
        next_reminder_at=None,
    )


def _allowed_text(phase: Phase) -> str:
    allowed = [p.value for p in _ORDER if p in TRANSITIONS[phase]]
    return ", ".join(allowed) if allowed else "none"


def _refuse(
    state: SessionState, target: Phase, by: str, now: datetime, reason: str
) -> PhaseOutcome:
    emit = Emit(
        kind=EventKind.PHASE_REFUSED,
        at=now,
        phase=target,
        from_phase=state.phase,
        session_id=state.session_id,
        by=by,
        reason=reason,
    )
    return PhaseOutcome(state, (emit,), reason)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}"


def request(
    state: SessionState,
    target: Phase,
    by: str,
    now: datetime,
    settings: PhaseSettings,
    session_id: str,
    planned_minutes: float | None = None,
) -> PhaseOutcome:
    """Staff ask to move the session to `target`.

    Args:
        state: Current session state.
        target: Requested phase.
        by: Who asked.
        now: Current time, aware UTC.
        settings: Planned durations.
        session_id: Id for the new session when this starts one (idle -> pre_check);
            ignored otherwise (the running session keeps its id).
        planned_minutes: Overrides the planned duration of the phase being entered (timed
            phases only; ignored for discharge_ready and idle). Must be > 0 and finite.

    Returns:
        `PhaseOutcome`. Accepted: the new state and one `PHASE_CHANGED`. Refused: the same
        state, `refused` set and one `PHASE_REFUSED`.
    """
    now = require_aware(now)
    if target is state.phase:
        return _refuse(state, target, by, now, f"already in {target.value}")
    if target not in TRANSITIONS[state.phase]:
        return _refuse(
            state,
            target,
            by,
            now,
            f"cannot go from {state.phase.value} to {target.value}; "
            f"allowed: {_allowed_text(state.phase)}",
        )
    if (
        state.phase is Phase.RECOVERY
        and state.min_recovery_end is not None
        and now < state.min_recovery_end
    ):
        remaining_min = math.ceil((state.min_recovery_end - now).total_seconds() / 60)
        return _refuse(
            state,
            target,
            by,
            now,
            f"recovery must last {_minutes(settings.min_recovery_s)} min; "
            f"{remaining_min} min remain",
        )
    if planned_minutes is not None and not (math.isfinite(planned_minutes) and planned_minutes > 0):
        return _refuse(state, target, by, now, "planned_minutes must be a positive number")
    if state.phase is Phase.IDLE and not session_id.strip():
        return _refuse(state, target, by, now, "a new session needs a session_id")

    new_session = session_id if state.phase is Phase.IDLE else state.session_id
    planned_s = settings.planned_s(target)
    if planned_s is not None and planned_minutes is not None:
        planned_s = planned_minutes * 60
    min_recovery_end: datetime | None = None
    if target is Phase.RECOVERY:
        min_recovery_end = now + timedelta(seconds=settings.min_recovery_s)
        if planned_s is not None:
            planned_s = max(planned_s, settings.min_recovery_s)
    planned_end = now + timedelta(seconds=planned_s) if planned_s is not None else None

    new_state = SessionState(
        phase=target,
        session_id=new_session if target is not Phase.IDLE else None,
        since=now,
        planned_end=planned_end,
        min_recovery_end=min_recovery_end,
        overrun=False,
        next_reminder_at=None,
    )
    detail: dict[str, str | int | float | bool | None] = {
        "planned_end": dt_to_str(planned_end),
        "planned_minutes": round(planned_s / 60, 2) if planned_s is not None else None,
        "previous_minutes": round((now - state.since).total_seconds() / 60, 2),
    }
    if state.phase is Phase.PRE_CHECK and target is Phase.IDLE:
        detail["aborted"] = True
    emit = Emit(
        kind=EventKind.PHASE_CHANGED,
        at=now,
        phase=target,
        from_phase=state.phase,
        # On the way back to idle the event still names the session that just ended.
        session_id=new_session,
        by=by,
        detail=detail,
    )
    return PhaseOutcome(new_state, (emit,))


def next_deadline(state: SessionState, settings: PhaseSettings) -> datetime | None:
    """When `tick` next has something to do (overrun or reminder), or None."""
    if state.phase not in TIMED_PHASES or state.planned_end is None:
        return None
    if not state.overrun:
        return state.planned_end
    return state.next_reminder_at


def _next_reminder(planned_end: datetime, now: datetime, every_s: float) -> datetime | None:
    if not (math.isfinite(every_s) and every_s > 0):
        return None
    elapsed = (now - planned_end).total_seconds()
    periods = math.floor(elapsed / every_s) + 1
    return planned_end + timedelta(seconds=periods * every_s)


def tick(state: SessionState, now: datetime, settings: PhaseSettings) -> tuple[SessionState, Emits]:
    """Advance time: emit the first overrun and then the reminders when they are due.

    Args:
        state: Current session state.
        now: Current time, aware UTC.
        settings: Reminder period.

    Returns:
        The new state and at most one `PHASE_OVERRUN` (detail: `minutes_over`,
        `reminder` = 0 for the first notice, then 1, 2, ...).
    """
    now = require_aware(now)
    deadline = next_deadline(state, settings)
    if deadline is None or now < deadline:
        return state, ()
    assert state.planned_end is not None
    over_s = (now - state.planned_end).total_seconds()
    minutes_over = math.floor(over_s / 60)
    every = settings.reminder_every_s
    reminder = (
        math.floor(over_s / every) if state.overrun and math.isfinite(every) and every > 0 else 0
    )
    planned_min = (state.planned_end - state.since).total_seconds() / 60
    new_state = replace(
        state,
        overrun=True,
        next_reminder_at=_next_reminder(state.planned_end, now, every),
    )
    emit = Emit(
        kind=EventKind.PHASE_OVERRUN,
        at=now,
        phase=state.phase,
        session_id=state.session_id,
        reason=(
            f"{state.phase.value} has run {minutes_over} min past its planned {planned_min:.0f} min"
        ),
        detail={
            "minutes_over": minutes_over,
            "reminder": reminder,
            "planned_end": dt_to_str(state.planned_end),
        },
    )
    return new_state, (emit,)


def to_dict(state: SessionState) -> dict[str, str | bool | None]:
    """A JSON-safe dict of the state, for persistence across restarts."""
    return {
        "phase": state.phase.value,
        "session_id": state.session_id,
        "since": dt_to_str(state.since),
        "planned_end": dt_to_str(state.planned_end),
        "min_recovery_end": dt_to_str(state.min_recovery_end),
        "overrun": state.overrun,
        "next_reminder_at": dt_to_str(state.next_reminder_at),
    }


def from_dict(data: Mapping[str, object]) -> SessionState:
    """Rebuild a state written by `to_dict`.

    Raises:
        ValueError: If the data is corrupt (the daemon then starts from `initial(now)`).
    """
    phase = Phase(str(data.get("phase")))
    session_id = data.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise ValueError("session_id must be a string or null")
    if (phase is Phase.IDLE) != (session_id is None):
        raise ValueError("a session_id is required outside idle and forbidden in idle")
    overrun = data.get("overrun", False)
    if not isinstance(overrun, bool):
        raise ValueError("overrun must be a boolean")
    return SessionState(
        phase=phase,
        session_id=session_id,
        since=dt_from_str_required(data.get("since")),
        planned_end=dt_from_str(data.get("planned_end")),
        min_recovery_end=dt_from_str(data.get("min_recovery_end")),
        overrun=overrun,
        next_reminder_at=dt_from_str(data.get("next_reminder_at")),
    )
