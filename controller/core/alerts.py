"""Vital-sign alerts per session phase: thresholds with persistence and hysteresis.

How this works:

* A rule (`AlertRule`) watches one vitals field. Its condition is `value < threshold`
  (`op="below"`) or `value > threshold` (`op="above"`).
* **Persistence**: when the condition first holds, the rule becomes *pending* (time noted);
  it is *raised* (`ALERT_RAISED`) once the condition has held on every reading for
  `persistence_s`. Any reading where it does not hold, or where the value is missing
  (None, NaN, absent from the reading), resets the pending time. `persistence_s=0` raises
  on the first reading.
* **Hysteresis**: an active alert clears (`ALERT_CLEARED`) only when the value is back past
  the threshold by `hysteresis` (below: `value >= threshold + hysteresis`; above:
  `value <= threshold - hysteresis`). In between it stays active, so a value wobbling
  around the threshold does not flap. A missing value never clears an active alert: a probe
  that falls off must not silence an alarm.
* **Fallback field**: a rule may name `fallback_field`, used when `field` is missing. The
  default heart-rate rules watch `heart_rate` (ECG) and fall back to `pulse_rate`
  (oximeter), since many rooms only have a pulse oximeter.
* **Phases**: `rules[phase]` is the rule set in force. An active alert whose rule does not
  exist in the current phase clears (on `on_phase_change`, and also on `evaluate`, so a
  missed phase hook cannot leave an orphan). A rule with the same name in two phases keeps
  its alert across the change; clearing then uses the new phase's threshold.
* `ActiveAlert.value` is the value that raised the alert (stable, so the retained state is
  not republished on every reading); `since` is when it was raised.

Default thresholds (`DEFAULT_RULES`), for adult ketamine infusion (sub-anaesthetic, IV,
40-60 min): they follow the usual procedural-sedation monitoring limits and are a starting
point for the clinic's medical director, not a clinical recommendation.

Columns: persistence (s), hysteresis, severity; "session" = infusion and recovery,
"awake" = pre_check and discharge_ready (patient awake and moving: looser limits).

| rule     | field                   | condition  | pers. | hyst. | sev.   | phases  |
|----------|-------------------------|------------|-------|-------|--------|---------|
| spo2_low | spo2                    | < 92 %     | 10    | 2     | high   | session |
| rr_low   | resp_rate               | < 8 /min   | 15    | 2     | high   | session |
| sys_high | nibp_sys                | > 180 mmHg | 0     | 5     | medium | session |
| hr_high  | heart_rate (pulse_rate) | > 130 /min | 10    | 5     | medium | session |
| spo2_low | spo2                    | < 90 %     | 15    | 2     | high   | awake   |
| sys_high | nibp_sys                | > 200 mmHg | 0     | 5     | medium | awake   |
| hr_high  | heart_rate (pulse_rate) | > 140 /min | 15    | 5     | medium | awake   |

Why: 10-15 s persistence rides out oximeter motion artefact; SpO2 and respiratory rate
(respiratory depression) are "high"; ketamine's expected sympathomimetic rise in blood
pressure and heart rate is "medium". NIBP is a discrete cuff measurement, so one reading
above the limit is enough (persistence 0). resp_rate is often absent (no capnography): the
rule then simply never fires.
Idle: no rules (no patient).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contract.alert_rules import DEFAULT_RULES, AlertRule
from contract.messages import ActiveAlert, EventKind, Phase
from contract.timefmt import dt_from_str_required, dt_to_str, require_aware
from controller.core.emit import Emit

Emits = tuple[Emit, ...]
Values = Mapping[str, float | None]


RuleTable = Mapping[Phase, Sequence[AlertRule]]


@dataclass(frozen=True)
class AlertState:
    """Alert bookkeeping of one room.

    Attributes:
        pending: Rule name -> when its condition started holding (not raised yet).
        active: Rule name -> the raised alert.
    """

    pending: Mapping[str, datetime] = field(default_factory=dict)
    active: Mapping[str, ActiveAlert] = field(default_factory=dict)


def initial() -> AlertState:
    """No pending and no active alerts."""
    return AlertState(pending={}, active={})


def _value(values: Values, rule: AlertRule) -> tuple[str, float] | None:
    for name in (rule.field, rule.fallback_field):
        if name is None:
            continue
        raw: Any = values.get(name)
        if raw is None or isinstance(raw, bool):
            continue
        value = float(raw)
        if math.isfinite(value):
            return name, value
    return None


def _detail(rule: AlertRule, used_field: str | None, value: float | None) -> dict[str, Any]:
    return {
        "name": rule.name,
        "field": used_field or rule.field,
        "value": value,
        "threshold": rule.threshold,
        "op": rule.op,
        "severity": rule.severity,
    }


def _cleared_emit(
    alert: ActiveAlert, now: datetime, phase: Phase, reason: str, value: float | None
) -> Emit:
    return Emit(
        kind=EventKind.ALERT_CLEARED,
        at=now,
        phase=phase,
        reason=reason,
        detail={
            "name": alert.name,
            "field": alert.field,
            "value": value,
            "threshold": alert.threshold,
            "severity": alert.severity,
            "active_s": round((now - alert.since).total_seconds(), 3),
        },
    )


def _drop_orphans(
    active: dict[str, ActiveAlert], rule_names: set[str], now: datetime, phase: Phase
) -> list[Emit]:
    emits = []
    for name in sorted(set(active) - rule_names):
        alert = active.pop(name)
        emits.append(
            _cleared_emit(alert, now, phase, f"no {name} rule in phase {phase.value}", None)
        )
    return emits


def evaluate(
    state: AlertState,
    values: Values,
    now: datetime,
    phase: Phase,
    rules: RuleTable = DEFAULT_RULES,
) -> tuple[AlertState, Emits]:
    """Apply one vitals reading.

    Args:
        state: Current alert state.
        values: Vitals field -> value (None or absent = not measured in this reading).
        now: Time of the reading, aware UTC.
        phase: Current session phase; selects `rules[phase]`.
        rules: Rule table per phase.

    Returns:
        The new state and its emits (`ALERT_RAISED` / `ALERT_CLEARED`, detail: name, field,
        value, threshold, ...), cleared ones first.
    """
    now = require_aware(now)
    phase_rules = tuple(rules.get(phase, ()))
    rule_names = {r.name for r in phase_rules}
    pending = {name: since for name, since in state.pending.items() if name in rule_names}
    active = dict(state.active)
    emits = _drop_orphans(active, rule_names, now, phase)
    raised: list[Emit] = []
    for rule in phase_rules:
        found = _value(values, rule)
        if found is None:
            pending.pop(rule.name, None)
            continue
        used_field, value = found
        if rule.name in active:
            pending.pop(rule.name, None)
            if rule.recovered(value):
                alert = active.pop(rule.name)
                emits.append(
                    _cleared_emit(
                        alert, now, phase, f"{used_field} {value:g} back within limits", value
                    )
                )
            continue
        if not rule.breached(value):
            pending.pop(rule.name, None)
            continue
        started = pending.get(rule.name, now)
        if now - started < timedelta(seconds=rule.persistence_s):
            pending[rule.name] = started
            continue
        pending.pop(rule.name, None)
        active[rule.name] = ActiveAlert(
            name=rule.name,
            field=used_field,
            severity=rule.severity,
            value=value,
            threshold=rule.threshold,
            since=now,
        )
        detail = _detail(rule, used_field, value)
        detail["held_s"] = round((now - started).total_seconds(), 3)
        raised.append(
            Emit(
                kind=EventKind.ALERT_RAISED,
                at=now,
                phase=phase,
                reason=f"{used_field} {value:g} {rule.op} {rule.threshold:g}",
                detail=detail,
            )
        )
    return AlertState(pending=pending, active=active), (*emits, *raised)


def on_phase_change(
    state: AlertState, phase: Phase, now: datetime, rules: RuleTable = DEFAULT_RULES
) -> tuple[AlertState, Emits]:
    """The session entered `phase`: alerts with no rule there clear; pending restarts.

    Args:
        state: Current alert state.
        phase: The new phase.
        now: Current time, aware UTC.
        rules: Rule table per phase.

    Returns:
        The new state and one `ALERT_CLEARED` per alert that has no rule in `phase`.
    """
    now = require_aware(now)
    names = {r.name for r in rules.get(phase, ())}
    active = dict(state.active)
    emits = _drop_orphans(active, names, now, phase)
    return AlertState(pending={}, active=active), tuple(emits)


def active_list(state: AlertState) -> list[ActiveAlert]:
    """Active alerts, oldest first (ties by name), for the retained `state` message."""
    return sorted(state.active.values(), key=lambda a: (a.since, a.name))


def to_dict(state: AlertState) -> dict[str, Any]:
    """A JSON-safe dict of the state, for persistence across restarts."""
    return {
        "pending": {name: dt_to_str(since) for name, since in sorted(state.pending.items())},
        "active": {name: _alert_to_dict(alert) for name, alert in sorted(state.active.items())},
    }


def _alert_to_dict(alert: ActiveAlert) -> dict[str, Any]:
    # Not model_dump(mode="json"): the contract's wire format keeps milliseconds only, and
    # persistence must round-trip exactly.
    data = alert.model_dump()
    data["since"] = dt_to_str(alert.since)
    return data


def from_dict(data: Mapping[str, Any]) -> AlertState:
    """Rebuild a state written by `to_dict`.

    Raises:
        ValueError: If the data is corrupt (pydantic's ValidationError is a ValueError).
    """
    pending_raw = data.get("pending", {})
    active_raw = data.get("active", {})
    if not isinstance(pending_raw, Mapping) or not isinstance(active_raw, Mapping):
        raise ValueError("pending and active must be objects")
    pending = {str(k): dt_from_str_required(v) for k, v in pending_raw.items()}
    active = {str(k): ActiveAlert.model_validate(v) for k, v in active_raw.items()}
    for name, alert in active.items():
        if alert.name != name:
            raise ValueError(f"active alert stored under {name!r} is named {alert.name!r}")
    return AlertState(pending=pending, active=active)
