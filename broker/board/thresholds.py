"""Alert thresholds drawn on the charts: the room controller's default rules per phase.

The board does not see a room's own configuration; it draws `contract.alert_rules.DEFAULT_RULES`
for the phase, and a room's active alerts (with their real thresholds) are listed beside the
charts from its retained state.
"""

from __future__ import annotations

from typing import Any

from contract.alert_rules import DEFAULT_RULES
from contract.messages import Phase

# vitals field -> the chart that draws it
CHART_OF_FIELD = {
    "spo2": "spo2",
    "heart_rate": "hr",
    "pulse_rate": "hr",
    "nibp_sys": "nibp",
    "nibp_dia": "nibp",
    "nibp_mean": "nibp",
    "resp_rate": "rr",
}


def thresholds_for(phase: str | None) -> list[dict[str, Any]]:
    try:
        rules = DEFAULT_RULES[Phase(phase or "infusion")]
    except ValueError:
        rules = DEFAULT_RULES[Phase.INFUSION]
    out = []
    for rule in rules:
        chart = CHART_OF_FIELD.get(rule.field)
        if chart is None:
            continue
        out.append(
            {
                "name": rule.name,
                "field": rule.field,
                "chart": chart,
                "op": rule.op,
                "threshold": rule.threshold,
                "severity": rule.severity,
            }
        )
    return out


_LEVEL_RANK = {"high": 0, "medium": 1, "low": 2}


def out_of_range(alerts: list[dict[str, Any]]) -> dict[str, str]:
    """Tile number (spo2, hr, nibp, rr) -> the highest level of the vital alerts on it."""
    out: dict[str, str] = {}
    for a in alerts:
        key = CHART_OF_FIELD.get(a["field"])
        level = a["severity"]
        if key is None or a["source"] != "vitals" or level not in _LEVEL_RANK:
            continue
        if key not in out or _LEVEL_RANK[level] < _LEVEL_RANK[out[key]]:
            out[key] = level
    return out
