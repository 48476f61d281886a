"""The calls of one room as data: `Call`, `CallState` (highest first), the settings, and
their persistence across restarts. The machine that changes them is `call_lifecycle`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.messages import MAX_ACTIVE_CALLS, CallPriority, CallStatus, CallType
from contract.timefmt import dt_from_str, dt_to_str
from controller.core.call_types import CallTable, default_table, rank


@dataclass(frozen=True)
class CallSettings:
    """Call behaviour: the call-type table (`call_types`)."""

    table: CallTable = field(default_factory=default_table)


@dataclass(frozen=True)
class Call:
    """One active call."""

    call_id: str
    type: CallType
    priority: CallPriority
    status: CallStatus
    placed_at: datetime
    tier: int = 1
    tier_at: datetime | None = None  # when it reached its current tier (None: tier 1)
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    escalated_at: datetime | None = None  # first climb (kept after a claim, for reports)
    reminders: int = 0
    last_reminder_at: datetime | None = None


def order(call: Call) -> tuple[int, datetime, str]:
    return (-rank(call.priority), call.placed_at, call.call_id)


@dataclass(frozen=True)
class CallState:
    """Every active call of the room, highest first; empty when there is none.

    `call_id`, `priority`, `status`, ... describe the first call (the one the dome shows),
    as the schema-1 `call` message does; `status` is `idle` without a call.
    """

    calls: tuple[Call, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.calls)

    @property
    def head(self) -> Call | None:
        return self.calls[0] if self.calls else None

    @property
    def call_id(self) -> str | None:
        return self.calls[0].call_id if self.calls else None

    @property
    def priority(self) -> CallPriority | None:
        return self.calls[0].priority if self.calls else None

    @property
    def status(self) -> CallStatus:
        return self.calls[0].status if self.calls else CallStatus.IDLE

    @property
    def placed_at(self) -> datetime | None:
        return self.calls[0].placed_at if self.calls else None

    @property
    def claimed_by(self) -> str | None:
        return self.calls[0].claimed_by if self.calls else None

    @property
    def claimed_at(self) -> datetime | None:
        return self.calls[0].claimed_at if self.calls else None

    @property
    def escalated_at(self) -> datetime | None:
        return self.calls[0].escalated_at if self.calls else None

    def of_type(self, call_type: CallType) -> Call | None:
        return next((c for c in self.calls if c.type is call_type), None)

    def by_id(self, call_id: str) -> Call | None:
        return next((c for c in self.calls if c.call_id == call_id), None)


def with_call(state: CallState, *, drop: str | None = None, put: Call | None = None) -> CallState:
    calls = [c for c in state.calls if c.call_id not in (drop, put.call_id if put else None)]
    if put is not None:
        calls.append(put)
    return CallState(tuple(sorted(calls, key=order)))


def idle() -> CallState:
    """The state of a room with no call."""
    return CallState()


# -- persistence ----------------------------------------------------------------------


def _call_to_dict(c: Call) -> dict[str, Any]:
    return {
        "call_id": c.call_id,
        "type": c.type.value,
        "priority": c.priority.value,
        "status": c.status.value,
        "placed_at": dt_to_str(c.placed_at),
        "tier": c.tier,
        "tier_at": dt_to_str(c.tier_at),
        "claimed_by": c.claimed_by,
        "claimed_at": dt_to_str(c.claimed_at),
        "escalated_at": dt_to_str(c.escalated_at),
        "reminders": c.reminders,
        "last_reminder_at": dt_to_str(c.last_reminder_at),
    }


def to_dict(state: CallState) -> dict[str, Any]:
    """A JSON-safe dict of the state, for persistence across restarts."""
    return {"calls": [_call_to_dict(c) for c in state.calls]}


def _opt_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string or null")


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer {lo}..{hi}")
    return value


def _call_from_dict(data: Mapping[str, object]) -> Call:
    status = CallStatus(str(data.get("status")))
    if status is CallStatus.IDLE:
        raise ValueError("an active call cannot be idle")
    call_id = _opt_str(data.get("call_id"), "call_id")
    placed_at = dt_from_str(data.get("placed_at"))
    priority = CallPriority(str(data.get("priority")))
    raw_type = data.get("type")
    if raw_type is None:  # saved by a room before call types: emergency or a patient call
        raw_type = "emergency" if priority is CallPriority.EMERGENCY else "normal"
    call = Call(
        call_id=call_id or "",
        type=CallType(str(raw_type)),
        priority=priority,
        status=status,
        placed_at=placed_at,  # type: ignore[arg-type]  # checked below
        tier=_int(data.get("tier", 2 if status is CallStatus.ESCALATED else 1), "tier", 1, 3),
        tier_at=dt_from_str(data.get("tier_at")),
        claimed_by=_opt_str(data.get("claimed_by"), "claimed_by"),
        claimed_at=dt_from_str(data.get("claimed_at")),
        escalated_at=dt_from_str(data.get("escalated_at")),
        reminders=_int(data.get("reminders", 0), "reminders", 0, 1_000_000),
        last_reminder_at=dt_from_str(data.get("last_reminder_at")),
    )
    if not call.call_id or placed_at is None:
        raise ValueError("an active call needs call_id, priority and placed_at")
    if status is CallStatus.CLAIMED and (call.claimed_by is None or call.claimed_at is None):
        raise ValueError("a claimed call needs claimed_by and claimed_at")
    if status is CallStatus.ESCALATED and call.escalated_at is None:
        raise ValueError("an escalated call needs escalated_at")
    return call


def from_dict(data: Mapping[str, object]) -> CallState:
    """Rebuild a state written by `to_dict` (or by a room before several calls: one call).

    Raises:
        ValueError: If the data is corrupt or inconsistent (the daemon then starts from
            `idle()` and says so).
    """
    raw = data.get("calls")
    if raw is None:  # the schema-1 blob: one call, or idle
        if str(data.get("status", "idle")) == CallStatus.IDLE.value:
            return idle()
        return CallState((_call_from_dict(data),))
    if not isinstance(raw, list) or len(raw) > MAX_ACTIVE_CALLS:
        raise ValueError("calls must be a list of at most 16 calls")
    calls = [_call_from_dict(item) for item in raw if isinstance(item, Mapping)]
    if len(calls) != len(raw) or len({c.call_id for c in calls}) != len(calls):
        raise ValueError("calls must be objects with distinct call ids")
    return CallState(tuple(sorted(calls, key=order)))
