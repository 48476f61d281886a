"""The nurse-call lifecycle of one room, as a pure state machine.

How this works:

* One call at a time per room. `CallState` is frozen; every function returns a new state
  plus the events (`Emit`) the daemon should publish. Nothing here reads a clock or does
  I/O: `now` (aware UTC) is an argument.
* The legal status changes are the table `TRANSITIONS`::

      idle      -> placed                      (press / emergency)
      placed    -> claimed, escalated, idle    (claim / tick / cancel)
      escalated -> claimed, idle               (claim / cancel)
      claimed   -> idle                        (cancel)

* A press while a call is active never starts a second call: it raises the priority of
  the active call when the new priority is higher (`normal < infusion < emergency`), and
  is otherwise ignored. The call keeps its id and status.
* Escalation: an unclaimed `placed` call escalates once when it has waited
  `escalate_after_s[priority]` since `placed_at` (at exactly the deadline, too). The
  current priority counts: a normal call raised to emergency after 60 s is already past
  the 30 s emergency limit and escalates on the next tick. There is no re-escalation.
* Only the room cancels a call (cancel/presence button): staff claim, they never cancel.
* A refused claim returns `refused` (a human reason) and one `COMMAND_REFUSED` emit, so the
  refusal reaches the board's event log; it never raises.
* Every emit carries `call_id` and `priority`, so response times can be computed from the
  event log alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from contract.messages import CallPriority, CallStatus, EventKind, Phase
from contract.timefmt import dt_from_str, dt_to_str, require_aware
from controller.core.emit import Emit

TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.IDLE: frozenset({CallStatus.PLACED}),
    CallStatus.PLACED: frozenset({CallStatus.CLAIMED, CallStatus.ESCALATED, CallStatus.IDLE}),
    CallStatus.ESCALATED: frozenset({CallStatus.CLAIMED, CallStatus.IDLE}),
    CallStatus.CLAIMED: frozenset({CallStatus.IDLE}),
}

PRIORITY_RANK: dict[CallPriority, int] = {
    CallPriority.NORMAL: 0,
    CallPriority.INFUSION: 1,
    CallPriority.EMERGENCY: 2,
}

Emits = tuple[Emit, ...]


def _default_escalation() -> dict[CallPriority, float]:
    return {
        CallPriority.NORMAL: 180.0,
        CallPriority.INFUSION: 90.0,
        CallPriority.EMERGENCY: 30.0,
    }


@dataclass(frozen=True)
class CallSettings:
    """Call timing.

    Attributes:
        escalate_after_s: Seconds an unclaimed call of each priority waits before it
            escalates. A priority missing from the mapping never escalates.
    """

    escalate_after_s: Mapping[CallPriority, float] = field(default_factory=_default_escalation)


@dataclass(frozen=True)
class CallState:
    """The room's current call; `status` is `idle` (and every other field None) without one.

    Attributes:
        call_id: Id of the active call.
        priority: Current priority (only ever rises during a call).
        status: Where the call is in its lifecycle.
        placed_at: When the call was placed.
        claimed_by: Who claimed it.
        claimed_at: When it was claimed.
        escalated_at: When it escalated (kept after a claim, for reports).
    """

    call_id: str | None
    priority: CallPriority | None
    status: CallStatus
    placed_at: datetime | None
    claimed_by: str | None
    claimed_at: datetime | None
    escalated_at: datetime | None

    @property
    def active(self) -> bool:
        """True while a call is placed, escalated or claimed."""
        return self.status is not CallStatus.IDLE


@dataclass(frozen=True)
class CallOutcome:
    """Result of `claim`: the new state, events to publish, and a refusal reason or None."""

    state: CallState
    emits: Emits
    refused: str | None = None


def idle() -> CallState:
    """The state of a room with no call."""
    return CallState(
        call_id=None,
        priority=None,
        status=CallStatus.IDLE,
        placed_at=None,
        claimed_by=None,
        claimed_at=None,
        escalated_at=None,
    )


def _emit(state: CallState, kind: EventKind, now: datetime, **extra: Any) -> Emit:
    return Emit(kind=kind, at=now, call_id=state.call_id, priority=state.priority, **extra)


def _place_or_raise(
    state: CallState, now: datetime, priority: CallPriority, new_call_id: str
) -> tuple[CallState, Emits]:
    now = require_aware(now)
    if state.status is CallStatus.IDLE:
        placed = CallState(
            call_id=new_call_id,
            priority=priority,
            status=CallStatus.PLACED,
            placed_at=now,
            claimed_by=None,
            claimed_at=None,
            escalated_at=None,
        )
        return placed, (_emit(placed, EventKind.CALL_PLACED, now),)
    assert state.priority is not None  # every active call has a priority
    if PRIORITY_RANK[priority] <= PRIORITY_RANK[state.priority]:
        return state, ()
    raised = replace(state, priority=priority)
    emit = _emit(
        raised,
        EventKind.CALL_PRIORITY_RAISED,
        now,
        reason=f"priority raised from {state.priority.value} to {priority.value}",
        detail={"from_priority": state.priority.value, "status": state.status.value},
    )
    return raised, (emit,)


def press(
    state: CallState, now: datetime, phase: Phase, new_call_id: str
) -> tuple[CallState, Emits]:
    """The patient pressed the call button (short press).

    Args:
        state: Current call state.
        now: Current time, aware UTC.
        phase: The session phase; a press during infusion has priority `infusion`.
        new_call_id: Id to use if this press places a new call (ignored otherwise).

    Returns:
        The new state and its emits: `CALL_PLACED` from idle, `CALL_PRIORITY_RAISED` if an
        active call gets a higher priority, nothing otherwise.
    """
    priority = CallPriority.INFUSION if phase is Phase.INFUSION else CallPriority.NORMAL
    return _place_or_raise(state, now, priority, new_call_id)


def emergency(state: CallState, now: datetime, new_call_id: str) -> tuple[CallState, Emits]:
    """A long press or the emergency input: place an emergency call or raise the active one.

    Args:
        state: Current call state.
        now: Current time, aware UTC.
        new_call_id: Id to use if a new call is placed (ignored otherwise).

    Returns:
        The new state and its emits (`CALL_PLACED`, `CALL_PRIORITY_RAISED` or nothing when
        the call is already an emergency).
    """
    return _place_or_raise(state, now, CallPriority.EMERGENCY, new_call_id)


def _refuse(state: CallState, call_id: str, by: str, now: datetime, reason: str) -> CallOutcome:
    priority = state.priority if call_id == state.call_id else None
    emit = Emit(
        kind=EventKind.COMMAND_REFUSED,
        at=now,
        call_id=call_id,
        priority=priority,
        by=by,
        reason=reason,
        detail={"command": "claim", "topic": "cmd/claim"},
    )
    return CallOutcome(state, (emit,), reason)


def claim(state: CallState, call_id: str, by: str, now: datetime) -> CallOutcome:
    """Staff claim the current call from the board.

    A claim is accepted only for the current `call_id` while it is `placed` or `escalated`.
    A repeated claim by the person who already holds the call is accepted silently (no
    state change, no emit), so a retried command is harmless.

    Args:
        state: Current call state.
        call_id: The call the staff member saw on the board.
        by: Who claims it.
        now: Current time, aware UTC.

    Returns:
        `CallOutcome`; on refusal the state is unchanged, `refused` says why and the only
        emit is `COMMAND_REFUSED`.
    """
    now = require_aware(now)
    if not by.strip():
        return _refuse(state, call_id, by, now, "a claim must name who claims the call")
    if state.status is CallStatus.IDLE:
        return _refuse(state, call_id, by, now, f"call {call_id} is not active; no call is open")
    if call_id != state.call_id:
        return _refuse(
            state,
            call_id,
            by,
            now,
            f"call {call_id} is not the current call (current: {state.call_id})",
        )
    if state.status is CallStatus.CLAIMED:
        if state.claimed_by == by:
            return CallOutcome(state, ())
        return _refuse(
            state, call_id, by, now, f"call {call_id} already claimed by {state.claimed_by}"
        )
    if CallStatus.CLAIMED not in TRANSITIONS[state.status]:  # pragma: no cover - table guard
        return _refuse(state, call_id, by, now, f"cannot claim a {state.status.value} call")
    assert state.placed_at is not None
    claimed = replace(state, status=CallStatus.CLAIMED, claimed_by=by, claimed_at=now)
    emit = _emit(
        claimed,
        EventKind.CALL_CLAIMED,
        now,
        by=by,
        detail={
            "response_s": round((now - state.placed_at).total_seconds(), 3),
            "was_escalated": state.status is CallStatus.ESCALATED,
        },
    )
    return CallOutcome(claimed, (emit,))


def cancel(state: CallState, now: datetime) -> tuple[CallState, Emits]:
    """The cancel/presence button in the room: the active call ends.

    Args:
        state: Current call state.
        now: Current time, aware UTC.

    Returns:
        `idle()` and one `CALL_CANCELLED` (detail `response_s`: seconds from placed to
        cancelled; `claimed_by` if it was claimed), or the unchanged state and no emit when
        there is no call.
    """
    now = require_aware(now)
    if CallStatus.IDLE not in TRANSITIONS[state.status]:
        return state, ()
    assert state.placed_at is not None
    emit = _emit(
        state,
        EventKind.CALL_CANCELLED,
        now,
        by=state.claimed_by,
        detail={
            "response_s": round((now - state.placed_at).total_seconds(), 3),
            "status": state.status.value,
            "claimed_by": state.claimed_by,
            "was_escalated": state.escalated_at is not None,
        },
    )
    return idle(), (emit,)


def next_deadline(state: CallState, settings: CallSettings) -> datetime | None:
    """When `tick` next has something to do: the escalation time of a placed call, else None."""
    if state.status is not CallStatus.PLACED:
        return None
    assert state.priority is not None and state.placed_at is not None
    after = settings.escalate_after_s.get(state.priority)
    if after is None or not math.isfinite(after):
        return None
    return state.placed_at + timedelta(seconds=max(0.0, after))


def tick(state: CallState, now: datetime, settings: CallSettings) -> tuple[CallState, Emits]:
    """Advance time: an unclaimed placed call past its deadline escalates (once).

    Args:
        state: Current call state.
        now: Current time, aware UTC.
        settings: Escalation delays.

    Returns:
        The new state and `CALL_ESCALATED` (detail `waited_s`), or no change.
    """
    now = require_aware(now)
    deadline = next_deadline(state, settings)
    if deadline is None or now < deadline:
        return state, ()
    assert state.placed_at is not None
    escalated = replace(state, status=CallStatus.ESCALATED, escalated_at=now)
    waited = round((now - state.placed_at).total_seconds(), 3)
    emit = _emit(
        escalated,
        EventKind.CALL_ESCALATED,
        now,
        reason=f"unclaimed for {waited:.0f} s",
        detail={"waited_s": waited},
    )
    return escalated, (emit,)


def to_dict(state: CallState) -> dict[str, str | None]:
    """A JSON-safe dict of the state, for persistence across restarts."""
    return {
        "call_id": state.call_id,
        "priority": state.priority.value if state.priority is not None else None,
        "status": state.status.value,
        "placed_at": dt_to_str(state.placed_at),
        "claimed_by": state.claimed_by,
        "claimed_at": dt_to_str(state.claimed_at),
        "escalated_at": dt_to_str(state.escalated_at),
    }


def _opt_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string or null")


def from_dict(data: Mapping[str, object]) -> CallState:
    """Rebuild a state written by `to_dict`.

    Raises:
        ValueError: If the data is corrupt or inconsistent (the daemon then starts from
            `idle()` and says so).
    """
    status = CallStatus(str(data.get("status", "idle")))
    if status is CallStatus.IDLE:
        return idle()
    raw_priority = data.get("priority")
    state = CallState(
        call_id=_opt_str(data.get("call_id"), "call_id"),
        priority=CallPriority(str(raw_priority)) if raw_priority is not None else None,
        status=status,
        placed_at=dt_from_str(data.get("placed_at")),
        claimed_by=_opt_str(data.get("claimed_by"), "claimed_by"),
        claimed_at=dt_from_str(data.get("claimed_at")),
        escalated_at=dt_from_str(data.get("escalated_at")),
    )
    if state.call_id is None or state.priority is None or state.placed_at is None:
        raise ValueError("an active call needs call_id, priority and placed_at")
    if status is CallStatus.CLAIMED and (state.claimed_by is None or state.claimed_at is None):
        raise ValueError("a claimed call needs claimed_by and claimed_at")
    if status is CallStatus.ESCALATED and state.escalated_at is None:
        raise ValueError("an escalated call needs escalated_at")
    return state
