"""Who is paged for a call: pure (no I/O), one table of rules.

| call | who |
|---|---|
| emergency (any tier) | everyone on shift and the charge nurse, at once |
| tier 1 | the room's assigned nurse (nobody assigned, or she is off shift: everyone on shift) |
| tier 2 | every nurse on shift |
| tier 3 | the charge nurse (none configured: everyone on shift) |

A claimed call pages nobody; an answered one has left the room's `calls`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Roster:
    on_shift: Sequence[str]
    charge_nurse: str | None
    assignments: Mapping[str, str]  # room -> nurse


def recipients(room: str, tier: int, emergency: bool, roster: Roster) -> list[str]:
    everyone = list(dict.fromkeys(roster.on_shift))
    if emergency:
        charge = [roster.charge_nurse] if roster.charge_nurse else []
        return list(dict.fromkeys(everyone + charge))
    if tier <= 1:
        nurse = roster.assignments.get(room)
        return [nurse] if nurse in everyone else everyone
    if tier == 2:
        return everyone
    return [roster.charge_nurse] if roster.charge_nurse else everyone
