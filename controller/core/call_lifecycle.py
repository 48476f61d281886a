"""The nurse calls of one room, as a pure state machine: several calls, each its own lifecycle.

How this works:

* `CallState.calls` holds every active call, highest priority first (then oldest first):
  the first is what the dome shows and what the schema-1 fields of the retained `call`
  describe. Each `Call` has its own id, type (a row of `call_types`), priority, status,
  escalation tier, times and reminders. Nothing here reads a clock or does I/O.
* The legal status changes of one call are the table `TRANSITIONS`::

      idle      -> placed                      (press / input / cord open)
      placed    -> claimed, escalated, idle    (claim / tick / end)
      escalated -> claimed, idle               (claim / end)
      claimed   -> idle                        (end)

* Placing a call of a type already active never opens a second one of that type: it
  raises the active one's priority when the new priority is higher (a press during an
  infusion), and is otherwise ignored. An emergency (long press, emergency input) turns an
  active patient call (`normal`) into the emergency, keeping its id, status and times
  (`CALL_PRIORITY_RAISED`, detail `from_type`); with none, it places a new emergency call.
* Tiers: a call is placed at tier 1. While unclaimed it climbs to tier 2 after
  `tier_s[0]` since it was placed and to tier 3 after `tier_s[1]` more (per type; the
  current priority's timers count, so a call raised to emergency late climbs at once).
  Each climb is one `CALL_ESCALATED` (detail `tier`); the status becomes `escalated`.
* Reminders: a claimed call not cleared in the room within `reminder_s` of its claim is
  re-signalled (`CALL_REMINDER`, detail `reminders`), and again every `reminder_s`.
* Ending: only the room ends a call, and only a way its row allows (`ended_by`: cancel,
  presence, cord). `CALL_CANCELLED` carries detail `ended_by` and `response_s`: seconds
  from placed to the claim, or to the end when nobody claimed it (answered in the room).
* A refused claim returns `refused` and one `COMMAND_REFUSED` emit; it never raises.
* Every emit carries `call_id`, `priority` and detail `call_type`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from contract.messages import MAX_ACTIVE_CALLS, CallPriority, CallStatus, CallType, EventKind, Phase
from contract.timefmt import require_aware
from controller.core.call_state import (
    Call,
    CallSettings,
    CallState,
    from_dict,
    idle,
    order,
    to_dict,
    with_call,
)
from controller.core.call_types import EndedBy, rank
from controller.core.emit import Emit, Scalar

__all__ = [
    "TRANSITIONS",
    "Call",
    "CallOutcome",
    "CallSettings",
    "CallState",
    "cancel",
    "claim",
    "emergency",
    "end",
    "from_dict",
    "idle",
    "next_deadline",
    "place",
    "press",
    "tick",
    "to_dict",
]

TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.IDLE: frozenset({CallStatus.PLACED}),
    CallStatus.PLACED: frozenset({CallStatus.CLAIMED, CallStatus.ESCALATED, CallStatus.IDLE}),
    CallStatus.ESCALATED: frozenset({CallStatus.CLAIMED, CallStatus.IDLE}),
    CallStatus.CLAIMED: frozenset({CallStatus.IDLE}),
}
TOP_TIER = 3
UNCLAIMED = (CallStatus.PLACED, CallStatus.ESCALATED)

Emits = tuple[Emit, ...]


@dataclass(frozen=True)
class CallOutcome:
    """Result of `claim`: the new state, events to publish, and a refusal reason or None."""

    state: CallState
    emits: Emits
    refused: str | None = None


def _emit(call: Call, kind: EventKind, now: datetime, **extra: Any) -> Emit:
    detail: dict[str, Scalar] = {"call_type": call.type.value, "tier": call.tier}
    detail.update(extra.pop("detail", {}))
    return Emit(
        kind=kind, at=now, call_id=call.call_id, priority=call.priority, detail=detail, **extra
    )


def _raise(
    call: Call, now: datetime, priority: CallPriority, new_type: CallType
) -> tuple[Call, Emits]:
    if rank(priority) <= rank(call.priority) and new_type is call.type:
        return call, ()
    raised = replace(call, priority=max(priority, call.priority, key=rank), type=new_type)
    detail: dict[str, Scalar] = {"from_priority": call.priority.value, "status": call.status.value}
    if new_type is not call.type:
        detail["from_type"] = call.type.value
    emit = _emit(
        raised,
        EventKind.CALL_PRIORITY_RAISED,
        now,
        reason=f"priority raised from {call.priority.value} to {raised.priority.value}",
        detail=detail,
    )
    return raised, (emit,)


def place(
    state: CallState,
    call_type: CallType,
    now: datetime,
    phase: Phase,
    new_call_id: str,
    settings: CallSettings,
) -> tuple[CallState, Emits]:
    """An input of `call_type` fired: place that call, or raise the active one of its type.

    Returns:
        The new state and `CALL_PLACED`, `CALL_PRIORITY_RAISED` or nothing.
    """
    now = require_aware(now)
    spec = settings.table[call_type]
    priority = spec.priority_in(phase)
    if call_type is CallType.EMERGENCY and state.of_type(CallType.EMERGENCY) is None:
        patient = state.of_type(CallType.NORMAL)
        if patient is not None:  # a long press after a press: the same call, now an emergency
            raised, emits = _raise(patient, now, priority, CallType.EMERGENCY)
            return with_call(state, put=raised), emits
    current = state.of_type(call_type)
    if current is not None:
        raised, emits = _raise(current, now, priority, call_type)
        return (with_call(state, put=raised), emits) if emits else (state, ())
    if len(state.calls) >= MAX_ACTIVE_CALLS:  # pragma: no cover - one call per type is fewer
        return state, ()
    call = Call(new_call_id, call_type, priority, CallStatus.PLACED, now)
    return with_call(state, put=call), (_emit(call, EventKind.CALL_PLACED, now),)


def press(
    state: CallState,
    now: datetime,
    phase: Phase,
    new_call_id: str,
    settings: CallSettings | None = None,
) -> tuple[CallState, Emits]:
    """The patient pressed the call button (short press): a `normal` call."""
    return place(state, CallType.NORMAL, now, phase, new_call_id, settings or CallSettings())


def emergency(
    state: CallState, now: datetime, new_call_id: str, settings: CallSettings | None = None
) -> tuple[CallState, Emits]:
    """A long press or the emergency input: an emergency (raising an active patient call)."""
    return place(
        state, CallType.EMERGENCY, now, Phase.IDLE, new_call_id, settings or CallSettings()
    )


def _refuse(state: CallState, call_id: str, by: str, now: datetime, reason: str) -> CallOutcome:
    call = state.by_id(call_id)
    emit = Emit(
        kind=EventKind.COMMAND_REFUSED,
        at=now,
        call_id=call_id,
        priority=call.priority if call else None,
        by=by,
        reason=reason,
        detail={"command": "claim", "topic": "cmd/claim"},
    )
    return CallOutcome(state, (emit,), reason)


def claim(state: CallState, call_id: str, by: str, now: datetime) -> CallOutcome:
    """Staff claim one active call from the board.

    Accepted for an active call while it is `placed` or `escalated`; a repeated claim by
    the holder is accepted silently (no change, no emit), so a retried command is harmless.
    """
    now = require_aware(now)
    if not by.strip():
        return _refuse(state, call_id, by, now, "a claim must name who claims the call")
    if not state.active:
        return _refuse(state, call_id, by, now, f"call {call_id} is not active; no call is open")
    call = state.by_id(call_id)
    if call is None:
        current = ", ".join(c.call_id for c in state.calls)
        return _refuse(
            state, call_id, by, now, f"call {call_id} is not an active call (active: {current})"
        )
    if call.status is CallStatus.CLAIMED:
        if call.claimed_by == by:
            return CallOutcome(state, ())
        return _refuse(
            state, call_id, by, now, f"call {call_id} already claimed by {call.claimed_by}"
        )
    claimed = replace(call, status=CallStatus.CLAIMED, claimed_by=by, claimed_at=now)
    emit = _emit(
        claimed,
        EventKind.CALL_CLAIMED,
        now,
        by=by,
        detail={
            "response_s": round((now - call.placed_at).total_seconds(), 3),
            "was_escalated": call.status is CallStatus.ESCALATED,
        },
    )
    return CallOutcome(with_call(state, put=claimed), (emit,))


def end(
    state: CallState,
    how: EndedBy,
    now: datetime,
    settings: CallSettings,
    only: CallType | None = None,
) -> tuple[CallState, Emits]:
    """End every active call whose row allows `how` (and of type `only`, when given).

    Returns:
        The calls left and one `CALL_CANCELLED` per ended call (detail `ended_by`,
        `response_s`: placed -> claim, or placed -> now when unclaimed; `resolved_s`).
    """
    now = require_aware(now)
    kept: list[Call] = []
    emits: list[Emit] = []
    for call in state.calls:
        spec = settings.table[call.type]
        if how not in spec.ended_by or (only is not None and call.type is not only):
            kept.append(call)
            continue
        answered = call.claimed_at or now
        emits.append(
            _emit(
                call,
                EventKind.CALL_CANCELLED,
                now,
                by=call.claimed_by,
                detail={
                    "ended_by": how.value,
                    "response_s": round((answered - call.placed_at).total_seconds(), 3),
                    "resolved_s": round((now - call.placed_at).total_seconds(), 3),
                    "status": call.status.value,
                    "claimed_by": call.claimed_by,
                    "was_escalated": call.escalated_at is not None,
                    "reminders": call.reminders,
                },
            )
        )
    return CallState(tuple(kept)), tuple(emits)


def cancel(
    state: CallState, now: datetime, settings: CallSettings | None = None
) -> tuple[CallState, Emits]:
    """The cancel button in the room: every call its row lets the cancel button end."""
    return end(state, EndedBy.CANCEL, now, settings or CallSettings())


def _climb_at(call: Call, settings: CallSettings) -> datetime | None:
    spec = settings.table[call.type]
    if call.status not in UNCLAIMED or call.tier >= TOP_TIER or not spec.escalates:
        return None
    tiers = spec.tiers_for(call.priority)
    wait = max(0.0, tiers[call.tier - 1])
    return (call.tier_at or call.placed_at) + timedelta(seconds=wait)


def _remind_at(call: Call, settings: CallSettings) -> datetime | None:
    every = settings.table[call.type].reminder_s
    if call.status is not CallStatus.CLAIMED or every is None or call.claimed_at is None:
        return None
    return (call.last_reminder_at or call.claimed_at) + timedelta(seconds=max(1.0, every))


def next_deadline(state: CallState, settings: CallSettings) -> datetime | None:
    """When `tick` next has something to do (a climb or a reminder), else None."""
    times = [
        t
        for call in state.calls
        for t in (_climb_at(call, settings), _remind_at(call, settings))
        if t is not None
    ]
    return min(times, default=None)


def _tick_one(call: Call, now: datetime, settings: CallSettings) -> tuple[Call, list[Emit]]:
    emits: list[Emit] = []
    for _ in range(TOP_TIER):  # bounded: at most two climbs
        at = _climb_at(call, settings)
        if at is None or now < at:
            break
        call = replace(
            call,
            tier=call.tier + 1,
            tier_at=at,
            status=CallStatus.ESCALATED,
            escalated_at=call.escalated_at or now,
        )
        waited = round((now - call.placed_at).total_seconds(), 3)
        emits.append(
            _emit(
                call,
                EventKind.CALL_ESCALATED,
                now,
                reason=f"unclaimed for {waited:.0f} s: tier {call.tier}",
                detail={"waited_s": waited},
            )
        )
    at = _remind_at(call, settings)
    if at is not None and now >= at:
        call = replace(call, reminders=call.reminders + 1, last_reminder_at=now)
        open_s = round((now - call.placed_at).total_seconds(), 3)
        emits.append(
            _emit(
                call,
                EventKind.CALL_REMINDER,
                now,
                by=call.claimed_by,
                reason=f"claimed by {call.claimed_by} but not cleared in the room",
                detail={"reminders": call.reminders, "open_s": open_s},
            )
        )
    return call, emits


def tick(state: CallState, now: datetime, settings: CallSettings) -> tuple[CallState, Emits]:
    """Advance time: unclaimed calls climb tiers, claimed calls not cleared re-signal."""
    now = require_aware(now)
    calls: list[Call] = []
    emits: list[Emit] = []
    for call in state.calls:
        new, more = _tick_one(call, now, settings)
        calls.append(new)
        emits.extend(more)
    if not emits:
        return state, ()
    return CallState(tuple(sorted(calls, key=order))), tuple(emits)
