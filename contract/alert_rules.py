"""Vital-sign alert rules and the default table per phase.

The room evaluates these (`controller.core.alerts`, with a room's own rules from its
config); the board draws the defaults on its charts. One table for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from contract.messages import Phase


@dataclass(frozen=True)
class AlertRule:
    """One threshold on one vitals field.

    Attributes:
        name: Alert name, unique within a phase (e.g. "spo2_low").
        field: Vitals field watched (a name from `contract.VITAL_FIELDS`).
        op: "below" (value < threshold) or "above" (value > threshold).
        threshold: The limit.
        persistence_s: How long the condition must hold before the alert is raised.
        hysteresis: How far back past the threshold the value must go to clear.
        severity: Carried into `ActiveAlert` and the events.
        fallback_field: Field used when `field` is missing from a reading.
    """

    name: str
    field: str
    op: Literal["below", "above"]
    threshold: float
    persistence_s: float = 10
    hysteresis: float = 2
    severity: Literal["high", "medium", "low"] = "high"
    fallback_field: str | None = None

    def breached(self, value: float) -> bool:
        """True when `value` meets the alert condition."""
        return value < self.threshold if self.op == "below" else value > self.threshold

    def recovered(self, value: float) -> bool:
        """True when `value` is back past the threshold by the hysteresis."""
        if self.op == "below":
            return value >= self.threshold + self.hysteresis
        return value <= self.threshold - self.hysteresis


_SESSION_RULES: tuple[AlertRule, ...] = (
    AlertRule("spo2_low", "spo2", "below", 92, persistence_s=10, hysteresis=2),
    AlertRule("rr_low", "resp_rate", "below", 8, persistence_s=15, hysteresis=2),
    AlertRule(
        "sys_high", "nibp_sys", "above", 180, persistence_s=0, hysteresis=5, severity="medium"
    ),
    AlertRule(
        "hr_high",
        "heart_rate",
        "above",
        130,
        persistence_s=10,
        hysteresis=5,
        severity="medium",
        fallback_field="pulse_rate",
    ),
)

_LOOSE_RULES: tuple[AlertRule, ...] = (
    AlertRule("spo2_low", "spo2", "below", 90, persistence_s=15, hysteresis=2),
    AlertRule(
        "sys_high", "nibp_sys", "above", 200, persistence_s=0, hysteresis=5, severity="medium"
    ),
    AlertRule(
        "hr_high",
        "heart_rate",
        "above",
        140,
        persistence_s=15,
        hysteresis=5,
        severity="medium",
        fallback_field="pulse_rate",
    ),
)

DEFAULT_RULES: Mapping[Phase, tuple[AlertRule, ...]] = {
    Phase.IDLE: (),
    Phase.PRE_CHECK: _LOOSE_RULES,
    Phase.INFUSION: _SESSION_RULES,
    Phase.RECOVERY: _SESSION_RULES,
    Phase.DISCHARGE_READY: _LOOSE_RULES,
}
