"""The dome light above the door: what it shows, as layers, highest first. Pure.

How this works: `layers(...)` lists everything the dome should show, one `DomeLayer`
(palette colour + pattern) per thing, most urgent first (`LAYER_RANK`):

| rank | layer                                      | colour (default)      | pattern              |
|------|--------------------------------------------|-----------------------|----------------------|
| 0    | a call no screen or phone confirmed (issue 15) | its type's        | blind (a strobe)     |
| 0    | a call with priority emergency             | its type's (red)      | fast                 |
| 1    | an escalated call (tier 2 or 3)            | its type's            | fast                 |
| 2    | a room alert (vital rule or monitor alarm) | `alert` (magenta)     | by severity          |
| 3    | a claimed call re-signalling (reminder)    | its type's            | reminder             |
| 4    | an unclaimed call                          | its type's            | its row's pattern    |
| 5    | a claimed call                             | its type's            | its claimed pattern  |
| 6    | monitor trouble during a session           | `trouble` (yellow)    | trouble              |
| 7    | cleaning mode                              | `cleaning` (cyan)     | steady               |
| 8    | staff presence                             | `presence` (green)    | steady               |

What the hardware shows (`room_hardware`, from `dome.kind` in config):
* `single`: one lamp: the first layer's pattern, so priorities differ by blink pattern
  (emergency fast, alert 0.5 s, infusion slow, trouble a short flash) as before. Presence
  and cleaning are colour-only layers: a single-colour lamp leaves them out (a steady lamp
  must keep meaning a patient call); they show on the board and in `state`.
* `rgb`: one RGB lamp: the first layer's colour (from the palette) and pattern.
* `sections`: one single-colour lamp per palette colour: each section shows the first
  layer of its colour, so presence (green) stays lit beneath a call (white).
A trouble call (cord out) is shown as trouble (yellow, short flash), not as a patient call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from contract.messages import ActiveAlert, CallPriority, CallStatus
from controller.core.call_lifecycle import Call
from controller.core.call_types import CallTable
from controller.core.lighting import RGB, DomePattern

PATTERNS: dict[str, DomePattern] = {
    "off": DomePattern("off"),
    "steady": DomePattern("steady"),
    "fast": DomePattern("blink", 0.25, 0.25),
    "alert": DomePattern("blink", 0.5, 0.5),
    "slow": DomePattern("blink", 1.0, 1.0),
    "reminder": DomePattern("blink", 0.25, 0.75),
    "trouble": DomePattern("blink", 0.1, 1.9),
}
# No screen and no phone has the call (issue 15): a strobe, the room's own (not configurable).
BLIND = DomePattern("blink", 0.1, 0.1)
PRIORITY_PATTERN: dict[CallPriority, str] = {
    CallPriority.TROUBLE: "trouble",
    CallPriority.NORMAL: "steady",
    CallPriority.INFUSION: "slow",
    CallPriority.HIGH: "alert",
    CallPriority.EMERGENCY: "fast",
}
ALERT_PATTERN = {"high": "alert", "medium": "alert", "low": "slow"}

DEFAULT_PALETTE: dict[str, RGB] = {
    "white": (1.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "amber": (1.0, 0.5, 0.0),
    "yellow": (1.0, 0.85, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.2, 1.0),
    "cyan": (0.0, 0.8, 0.8),
    "magenta": (1.0, 0.0, 0.8),
}
# What the room's own layers use, by role (config may point a role at another colour).
DEFAULT_ROLES: dict[str, str] = {
    "alert": "magenta",
    "trouble": "yellow",
    "cleaning": "cyan",
    "presence": "green",
}


@dataclass(frozen=True)
class DomeLayer:
    colour: str
    kind: str  # off / steady / blink
    on_s: float = 0.0
    off_s: float = 0.0
    what: str = ""  # what it shows (for logs and tests): a call type, alert, presence...
    colour_only: bool = False  # only a dome with colours shows it (presence, cleaning)


@dataclass(frozen=True)
class DomeSettings:
    roles: Mapping[str, str]


def _layer(colour: str, pattern: str, what: str, colour_only: bool = False) -> DomeLayer:
    p = PATTERNS[pattern]
    return DomeLayer(colour, p.kind, p.on_s, p.off_s, what, colour_only)


def _call_layer(call: Call, table: CallTable, blind: bool = False) -> tuple[int, DomeLayer]:
    spec = table[call.type]
    what = call.type.value
    if blind and call.status is not CallStatus.CLAIMED:
        blind_what = what + " (central blind)"
        return 0, DomeLayer(spec.colour, BLIND.kind, BLIND.on_s, BLIND.off_s, blind_what)
    if call.priority is CallPriority.EMERGENCY:
        return 0, _layer(spec.colour, "fast", what)
    if call.status is CallStatus.ESCALATED:
        return 1, _layer(spec.colour, "fast", what)
    if call.status is CallStatus.CLAIMED:
        if call.reminders:
            return 3, _layer(spec.colour, "reminder", what)
        return 5, _layer(spec.colour, spec.claimed_pattern, what)
    if call.priority is CallPriority.INFUSION or spec.pattern is None:
        return 4, _layer(spec.colour, PRIORITY_PATTERN[call.priority], what)
    return 4, _layer(spec.colour, spec.pattern, what)


def layers(
    calls: Sequence[Call],
    table: CallTable,
    alerts: Sequence[ActiveAlert],
    monitor_trouble: bool,
    cleaning: bool,
    presence: bool,
    roles: Mapping[str, str] = DEFAULT_ROLES,
    blind: frozenset[str] = frozenset(),
) -> tuple[DomeLayer, ...]:
    """Everything the dome shows, most urgent first (the table in the module docstring)."""
    ranked: list[tuple[int, int, DomeLayer]] = []
    for n, call in enumerate(calls):
        rank, layer = _call_layer(call, table, call.call_id in blind)
        ranked.append((rank, n, layer))
    if alerts:
        worst = min(alerts, key=lambda a: ("high", "medium", "low").index(a.severity))
        ranked.append((2, 0, _layer(roles["alert"], ALERT_PATTERN[worst.severity], "alert")))
    if monitor_trouble:
        ranked.append((6, 0, _layer(roles["trouble"], "trouble", "monitor")))
    if cleaning:
        ranked.append((7, 0, _layer(roles["cleaning"], "steady", "cleaning", colour_only=True)))
    if presence:
        ranked.append((8, 0, _layer(roles["presence"], "steady", "presence", colour_only=True)))
    return tuple(layer for _, _, layer in sorted(ranked, key=lambda r: (r[0], r[1])))


def top(dome_layers: Sequence[DomeLayer]) -> DomeLayer:
    """What a single-colour lamp shows: the first layer that is not colour-only, or off."""
    shown = [x for x in dome_layers if not x.colour_only]
    return shown[0] if shown else DomeLayer("white", "off", what="nothing")


def sections(dome_layers: Sequence[DomeLayer], colours: Sequence[str]) -> dict[str, DomeLayer]:
    """What each lamp of a multi-section dome shows: the first layer of its colour."""
    out = {c: DomeLayer(c, "off") for c in colours}
    for layer in reversed(dome_layers):
        if layer.colour in out:
            out[layer.colour] = layer
    return out
