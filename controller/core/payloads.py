"""The bodies of the room's messages, built from the machines' states.

Each function returns a `Publish` for one contract model: every field but the envelope
(`v`, `site`, `room`, `seq`, `ts`, `clock_synced`), which the outbox adds with the `seq`.
The health body is in `health`; a vitals body is `contract.vitals.vitals_fields`.
"""

from __future__ import annotations

from contract.messages import CallMessage, EventMessage, StateMessage
from controller.core import alerts, lighting
from controller.core.call_lifecycle import CallState
from controller.core.emit import Emit
from controller.core.io_types import Action, Publish
from controller.core.phases import SessionState


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
    s: SessionState, alert_state: alerts.AlertState, scene: lighting.Scene, override: str | None
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
            "alerts": alerts.active_list(alert_state),
            "scene": scene.name,
            "scene_override": override is not None,
        },
    )


def call(c: CallState) -> Publish:
    return Publish(
        CallMessage,
        {
            "call_id": c.call_id,
            "priority": c.priority,
            "status": c.status,
            "placed_at": c.placed_at,
            "claimed_by": c.claimed_by,
            "claimed_at": c.claimed_at,
            "escalated_at": c.escalated_at,
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
