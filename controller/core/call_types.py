"""The call-type table: one row per kind of call, everything else reads it.

How this works: `CallTypeSpec` is one row (priority, dome colour and patterns, escalation
tier timers, reminder interval, who may end it, whether cleaning mode ignores it).
`default_table(...)` builds the defaults below; the room's config may override any field of
any row (`[call_types.bath]` in room.toml, see `controller.config.CallTypeSettings`).

| type      | priority   | colour | pattern | tier timers (s)   | rem. | ended by         | clean |
|-----------|------------|--------|---------|-------------------|------|------------------|-------|
| normal    | normal (*) | white  | steady  | 180, 180 (90, 90) | 300  | cancel, presence | off   |
| bath      | high       | amber  | alert   | 60, 60            | 180  | cancel, presence | off   |
| assist    | high       | blue   | alert   | 60, 60            | 180  | cancel           | on    |
| emergency | emergency  | red    | fast    | 30, 30            | 60   | cancel           | on    |
| cord_out  | trouble    | yellow | trouble | 300, 600          | -    | loop closing     | on    |
| test      | trouble    | white  | trouble | never escalates   | -    | cancel, presence | on    |

(*) during an infusion a patient call has priority `infusion`, a slow blink and the
infusion tier timers. The normal/infusion/emergency first-tier defaults come from the old
`timing.escalate_*_s` settings, so a room.toml written before call types keeps its timers.

Who may end a call (`ended_by`): `cancel` (the cancel button in the room), `presence` (staff
presence starting: the call is answered in the room), `cord` (the call-cord loop closing).
`rem.`: reminder interval (s); `clean`: whether the input works in cleaning mode.
A `test` call is placed only by `cmd/test_call` from the board (no input maps to it): the
lowest priority, never escalated (it stays at tier 1: the board and the room's assigned nurse
only), labelled TEST everywhere, ended in the room like a patient call.
Nothing from outside the room ends a call: staff claim, they never cancel.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from contract.messages import CALL_PRIORITY_RANK, CallPriority, CallType, Phase


class EndedBy(enum.StrEnum):
    CANCEL = "cancel"
    PRESENCE = "presence"
    CORD = "cord"


@dataclass(frozen=True)
class CallTypeSpec:
    """One row of the call-type table.

    Attributes:
        type: The call type.
        priority: Its priority.
        infusion_priority: Its priority when placed (or pressed again) during an infusion;
            None = `priority`.
        colour: Palette name of its dome colour.
        pattern: Dome pattern name (`controller.core.dome.PATTERNS`) while unclaimed;
            None = the pattern of its priority.
        claimed_pattern: Dome pattern once claimed (an emergency stays fast).
        tier_s: Seconds at tier 1 and at tier 2 before the call climbs (unclaimed only).
        infusion_tier_s: Tier timers at priority `infusion`; None = `tier_s`.
        reminder_s: A claimed call not cleared in the room re-signals this often; None never.
        ended_by: Who may end it.
        in_cleaning: False: cleaning mode ignores this input.
        trouble: Equipment trouble, shown as such (not a patient call).
        escalates: False: the call stays at tier 1 whatever its timers (a test call).
    """

    type: CallType
    priority: CallPriority
    colour: str
    tier_s: tuple[float, float]
    ended_by: frozenset[EndedBy]
    infusion_priority: CallPriority | None = None
    pattern: str | None = None
    claimed_pattern: str = "steady"
    infusion_tier_s: tuple[float, float] | None = None
    reminder_s: float | None = None
    in_cleaning: bool = True
    trouble: bool = False
    escalates: bool = True

    def priority_in(self, phase: Phase) -> CallPriority:
        if phase is Phase.INFUSION and self.infusion_priority is not None:
            return self.infusion_priority
        return self.priority

    def tiers_for(self, priority: CallPriority) -> tuple[float, float]:
        if priority is CallPriority.INFUSION and self.infusion_tier_s is not None:
            return self.infusion_tier_s
        return self.tier_s


CallTable = Mapping[CallType, CallTypeSpec]

ROUTINE = frozenset({EndedBy.CANCEL, EndedBy.PRESENCE})


def default_table(
    normal_s: float = 180.0, infusion_s: float = 90.0, emergency_s: float = 30.0
) -> dict[CallType, CallTypeSpec]:
    """The default rows (the table in the module docstring)."""
    rows = (
        CallTypeSpec(
            CallType.NORMAL,
            CallPriority.NORMAL,
            "white",
            (normal_s, normal_s),
            ROUTINE,
            infusion_priority=CallPriority.INFUSION,
            infusion_tier_s=(infusion_s, infusion_s),
            reminder_s=300.0,
            in_cleaning=False,
        ),
        CallTypeSpec(
            CallType.BATH,
            CallPriority.HIGH,
            "amber",
            (60.0, 60.0),
            ROUTINE,
            reminder_s=180.0,
            in_cleaning=False,
        ),
        CallTypeSpec(
            CallType.ASSIST,
            CallPriority.HIGH,
            "blue",
            (60.0, 60.0),
            frozenset({EndedBy.CANCEL}),
            reminder_s=180.0,
        ),
        CallTypeSpec(
            CallType.EMERGENCY,
            CallPriority.EMERGENCY,
            "red",
            (emergency_s, emergency_s),
            frozenset({EndedBy.CANCEL}),
            claimed_pattern="fast",
            reminder_s=60.0,
        ),
        CallTypeSpec(
            CallType.CORD_OUT,
            CallPriority.TROUBLE,
            "yellow",
            (300.0, 600.0),
            frozenset({EndedBy.CORD}),
            claimed_pattern="trouble",
            trouble=True,
        ),
        CallTypeSpec(
            CallType.TEST,
            CallPriority.TROUBLE,
            "white",
            (300.0, 300.0),
            ROUTINE,
            claimed_pattern="trouble",
            escalates=False,
        ),
    )
    return {row.type: row for row in rows}


def with_overrides(
    table: Mapping[CallType, CallTypeSpec], overrides: Mapping[CallType, Mapping[str, Any]]
) -> dict[CallType, CallTypeSpec]:
    """The table with the config's fields applied (the config model checked them)."""
    out = dict(table)
    for call_type, fields in overrides.items():
        changes = {k: v for k, v in fields.items() if v is not None}
        if "ended_by" in changes:
            changes["ended_by"] = frozenset(EndedBy(v) for v in changes["ended_by"])
        for key in ("tier_s", "infusion_tier_s"):
            if key in changes:
                changes[key] = tuple(float(v) for v in changes[key])
        out[call_type] = replace(out[call_type], **changes)
    return out


def rank(priority: CallPriority) -> int:
    """Higher is more urgent."""
    return CALL_PRIORITY_RANK[priority]
