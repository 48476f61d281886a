"""The bodies of the room's messages, built from the machines' states.

Each function returns a `Publish` for one contract model: every field but the envelope
(`v`, `site`, `room`, `seq`, `ts`, `clock_synced`), which the outbox adds with the `seq`.
The health body is in `health`; a vitals body is `contract.vitals.vitals_fields`.
"""

from __future__ import annotations

from typing import Any

from contract.messages import ActiveAlert, CallMessage, EventMessage, StateMessage
from controller.core import lighting
from controller.core.call_lifecycle import Call, CallState
from controller.core.call_types import CallTable
from controller.core.emit import Emit
from controller.core.io_types import Action, Publish
from controller.core.phases import SessionState
from controller.core.presence import Cleaning, Presence


def event(e: Emit) -> Publish:
    return Publish(
        EventMessage,
        {
            "kind": e.kind,
            "call_id": e.call_id,
            "priority": e.priority,
            "phase": e.phase,
            "from_phase": e.from_phase,
            "session_id": e.session_id,
            "by": e.by,
            "reason": e.reason,
            "detail": dict(e.detail),
        },
    )


def state(
    s: SessionState,
    active_alerts: list[ActiveAlert],
    scene: lighting.Scene,
    override: str | None,
    presence: Presence | None = None,
    cleaning: Cleaning | None = None,
    cords_open: tuple[str, ...] = (),
) -> Publish:
    return Publish(
        StateMessage,
        {
            "phase": s.phase,
            "session_id": s.session_id,
            "since": s.since,
            "planned_end": s.planned_end,
            "min_recovery_end": s.min_recovery_end,
            "overrun": s.overrun,
            "alerts": active_alerts,
            "scene": scene.name,
            "scene_override": override is not None,
            "presence": None
            if presence is None
            else {"since": presence.since, "until": presence.until},
            "cleaning": None
            if cleaning is None
            else {"since": cleaning.since, "until": cleaning.until, "by": cleaning.by},
            "cords_open": list(cords_open),
        },
    )


def _active(c: Call, table: CallTable) -> dict[str, Any]:
    return {
        "call_id": c.call_id,
        "type": c.type,
        "priority": c.priority,
        "status": c.status,
        "tier": c.tier,
        "placed_at": c.placed_at,
        "claimed_by": c.claimed_by,
        "claimed_at": c.claimed_at,
        "escalated_at": c.escalated_at,
        "tier_at": c.tier_at,
        "reminders": c.reminders,
        "last_reminder_at": c.last_reminder_at,
        "trouble": table[c.type].trouble,
    }


def call(state: CallState, table: CallTable) -> Publish:
    """The retained `call`: every active call (highest first); the top-level fields are the
    first call's, as in schema 1."""
    head = state.head
    return Publish(
        CallMessage,
        {
            "call_id": head.call_id if head else None,
            "priority": head.priority if head else None,
            "status": state.status,
            "placed_at": head.placed_at if head else None,
            "claimed_by": head.claimed_by if head else None,
            "claimed_at": head.claimed_at if head else None,
            "escalated_at": head.escalated_at if head else None,
            "type": head.type if head else None,
            "tier": head.tier if head else None,
            "calls": [_active(c, table) for c in state.calls],
        },
    )


def with_request_id(action: Action, request_id: str) -> Action:
    """An event the room made for a command carries the command's `request_id` in `detail`.

    The board shows a command as applied or refused from this answer, never from a PUBACK.
    """
    if not isinstance(action, Publish) or action.model is not EventMessage:
        return action
    detail = {**action.body["detail"], "request_id": request_id}
    return Publish(EventMessage, {**action.body, "detail": detail})
