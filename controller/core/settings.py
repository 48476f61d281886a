"""What the room core needs from the room's config, built once, and restoring saved state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from contract.alert_rules import DEFAULT_RULES, AlertRule
from contract.messages import CallType, Phase
from controller.config import RoomConfig
from controller.core import call_lifecycle, call_types, cord, lighting, monitor_alarms, phases

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RoomSettings:
    phases: phases.PhaseSettings
    calls: call_lifecycle.CallSettings
    alert_rules: dict[Phase, tuple[AlertRule, ...]]
    phase_scenes: dict[Phase, str]
    cord: cord.CordSettings
    alarms: monitor_alarms.AlarmSettings
    dome_roles: dict[str, str]
    presence_max_s: float | None
    cleaning_minutes: float

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
            calls=call_lifecycle.CallSettings(call_table(config)),
            alert_rules=alert_rules(config),
            phase_scenes={**lighting.DEFAULT_PHASE_SCENES, **(config.scenes or {})},
            cord=cord.CordSettings(
                config.cord.debounce_s, config.cord.flap_window_s, config.cord.flap_count
            ),
            alarms=monitor_alarms.AlarmSettings(
                dict(config.monitor_alarms.map), config.monitor_alarms.unknown
            ),
            dome_roles=config.dome.full_roles(),
            presence_max_s=(
                config.presence.max_min * 60 if config.presence.max_min is not None else None
            ),
            cleaning_minutes=config.cleaning.minutes,
        )


def call_table(config: RoomConfig) -> dict[CallType, call_types.CallTypeSpec]:
    """The default call-type rows (first-tier timers from `timing`), the config's on top."""
    t = config.timing
    table = call_types.default_table(
        t.escalate_normal_s, t.escalate_infusion_s, t.escalate_emergency_s
    )
    overrides = {k: v.model_dump() for k, v in (config.call_types or {}).items()}
    return call_types.with_overrides(table, overrides)


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
