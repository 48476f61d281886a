"""A room's active calls as the board shows them (pure): each call's level (IEC 60601-1-8
colours: high red, medium yellow, low cyan), its words, tier and times, from the room's
retained `call` (schema 2 lists them; schema 1 has one)."""

from __future__ import annotations

from typing import Any

from contract import messages
from contract.messages import CallMessage, CallPriority, CallStatus
from contract.timefmt import format_ts


def _ts(value: Any) -> str | None:
    return format_ts(value) if value is not None else None


# Alarm levels (IEC 60601-1-8 colours: high red, medium yellow, low cyan).
LEVELS = ("high", "medium", "low")
_CALL_LEVEL = {
    CallPriority.EMERGENCY: "high",
    CallPriority.HIGH: "medium",
    CallPriority.INFUSION: "medium",
    CallPriority.NORMAL: "low",
    CallPriority.TROUBLE: "low",
}
# How a call type is named on the board and in `roomctl status` (schema 1: no type).
CALL_WORD = {
    "normal": "CALL",
    "bath": "BATH CALL",
    "assist": "STAFF ASSIST",
    "emergency": "EMERGENCY CALL",
    "cord_out": "CORD OUT",
    "test": "TEST CALL",
}


def call_level(priority: CallPriority | None, status: CallStatus) -> str:
    """Alarm level of a call: by priority; an escalated call goes up one level."""
    level = _CALL_LEVEL.get(priority or CallPriority.NORMAL, "low")
    if status == CallStatus.ESCALATED and level != "high":
        level = LEVELS[LEVELS.index(level) - 1]
    return level


def _call_type(priority: CallPriority | None, call_type: messages.CallType | None) -> str:
    if call_type is not None:
        return call_type.value
    return "emergency" if priority is CallPriority.EMERGENCY else "normal"  # schema 1


def _call_dict(a: messages.ActiveCall | CallMessage, call_type: str) -> dict[str, Any]:
    priority = a.priority or CallPriority.NORMAL
    tier = a.tier if a.tier is not None else (2 if a.status == CallStatus.ESCALATED else 1)
    return {
        "call_id": a.call_id,
        "type": call_type,
        "what": CALL_WORD[call_type],
        "priority": priority.value,
        "status": a.status.value,
        "tier": tier,
        "trouble": call_type == "cord_out",
        "level": call_level(priority, a.status),
        "placed_at": _ts(a.placed_at),
        "claimed_by": a.claimed_by,
        "claimed_at": _ts(a.claimed_at),
        "escalated_at": _ts(a.escalated_at),
        "reminders": a.reminders if isinstance(a, messages.ActiveCall) else 0,
    }


def calls_view(c: CallMessage | None) -> list[dict[str, Any]]:
    """Every active call of the room, highest first: from `calls` (schema 2), or the one
    call a schema-1 room describes in the top-level fields (never dropped, even partial)."""
    if c is None or c.status == CallStatus.IDLE:
        return []
    if c.calls:
        return [_call_dict(a, a.type.value) for a in c.calls]
    return [_call_dict(c, _call_type(c.priority, c.type))]
