"""What the room core needs from the room's config, built once, and restoring saved state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from contract.alert_rules import DEFAULT_RULES, AlertRule
from contract.messages import Phase
from controller.config import RoomConfig
from controller.core import call_lifecycle, lighting, phases

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RoomSettings:
    phases: phases.PhaseSettings
    calls: call_lifecycle.CallSettings
    alert_rules: dict[Phase, tuple[AlertRule, ...]]
    phase_scenes: dict[Phase, str]

    @classmethod
    def from_config(cls, config: RoomConfig) -> RoomSettings:
        t = config.timing
        return cls(
            phases=phases.PhaseSettings(
                planned_pre_check_s=t.planned_pre_check_min * 60,
                planned_infusion_s=t.planned_infusion_min * 60,
                planned_recovery_s=t.planned_recovery_min * 60,
                min_recovery_s=t.min_recovery_min * 60,
                reminder_every_s=t.reminder_every_min * 60,
            ),
            calls=call_lifecycle.CallSettings(escalate_after_s=t.escalate_after()),
            alert_rules=alert_rules(config),
            phase_scenes={**lighting.DEFAULT_PHASE_SCENES, **(config.scenes or {})},
        )


def alert_rules(config: RoomConfig) -> dict[Phase, tuple[AlertRule, ...]]:
    """The default rules per phase, with the room's own rules from its config on top."""
    rules = dict(DEFAULT_RULES)
    for phase, items in (config.alerts or {}).items():
        rules[phase] = tuple(AlertRule(**item.model_dump()) for item in items)
    return rules


def restore(
    name: str, data: Mapping[str, Any] | None, load: Callable[[Mapping[str, Any]], T], default: T
) -> T:
    """Saved state, or `default` when there is none or it is unreadable (said in the log)."""
    if data is None:
        return default
    try:
        return load(data)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("saved %s state is unreadable (%s): starting from a clean %s", name, exc, name)
        return default


def short_errors(exc: ValidationError) -> str:
    """The first validation errors of a refused payload, for a `command_refused` reason."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
