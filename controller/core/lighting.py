"""Lighting decisions: ambient scenes and fades, the dome light pattern, status LED codes.

Pure functions only; `firmware_py.room_io` turns the results into GPIO output.

Ambient light: each phase has a scene (`DEFAULT_PHASE_SCENES`); staff may override it with
`cmd/scene` (checked with `check_scene`). A scene change starts a `Fade` from whatever
colour the light shows *now* (even mid-fade), so retargeting never jumps. Colours are
linear 0..1 RGB duty cycles; the fade is eased with smoothstep.

Vital alerts never touch the ambient scene: they light the dome light only.

The dome light's patterns are `DomePattern`s; what the dome shows (calls, alerts, presence,
cleaning, in layers) is `controller.core.dome`.

Status LED codes (`status_code`), most severe first; the technician counts blinks:

| code | meaning                                    | condition               |
|------|--------------------------------------------|-------------------------|
| 5    | hardware fault (buttons/lights)            | not hardware_ok         |
| 1    | broker unreachable                         | not broker_connected    |
| 2    | bedside monitor silent                     | not monitor_ok          |
| 4    | outbox filling (>= 80 % of its cap)        | outbox_fill >= 0.8      |
| 3    | clock not synchronised                     | not clock_synced        |
| 0    | all well: slow heartbeat                   |                         |
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contract.messages import Phase
from contract.timefmt import require_aware

RGB = tuple[float, float, float]
BLACK: RGB = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Scene:
    """A named ambient colour and how long to fade into it.

    Attributes:
        name: Scene name (as used in `cmd/scene`).
        color: Target colour, each channel 0..1.
        fade_s: Fade duration into this scene, seconds.
    """

    name: str
    color: RGB
    fade_s: float


DEFAULT_SCENES: dict[str, Scene] = {
    s.name: s
    for s in (
        Scene("off", BLACK, 2.0),
        # Empty room: a dim neutral glow so the room is never pitch dark.
        Scene("idle", (0.15, 0.14, 0.12), 5.0),
        # Pre-check and cleaning: bright neutral white (cannulation, checks).
        Scene("clean", (1.0, 0.95, 0.88), 3.0),
        # Infusion: dim, warm, low blue; a slow fade so the patient is not startled.
        Scene("calm", (0.22, 0.10, 0.03), 30.0),
        # Recovery: warm and brighter, reached over 10 minutes (gradual re-orientation).
        Scene("recovery", (0.55, 0.35, 0.15), 600.0),
        # Discharge: bright warm white.
        Scene("discharge", (1.0, 0.78, 0.52), 60.0),
    )
}

DEFAULT_PHASE_SCENES: dict[Phase, str] = {
    Phase.IDLE: "idle",
    Phase.PRE_CHECK: "clean",
    Phase.INFUSION: "calm",
    Phase.RECOVERY: "recovery",
    Phase.DISCHARGE_READY: "discharge",
}


def _clamp(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def clamp_rgb(color: RGB) -> RGB:
    """Each channel clamped to 0..1 (NaN becomes 0)."""
    return (_clamp(color[0]), _clamp(color[1]), _clamp(color[2]))


def check_scene(name: str, scenes: Mapping[str, Scene] = DEFAULT_SCENES) -> str | None:
    """Validate a staff scene override.

    Returns:
        None if `name` is a known scene, else a human error text for `COMMAND_REFUSED`.
    """
    if name in scenes:
        return None
    return f"unknown scene {name!r}; known: {', '.join(sorted(scenes))}"


def scene_for(
    phase: Phase,
    override: str | None,
    phase_scenes: Mapping[Phase, str] = DEFAULT_PHASE_SCENES,
    scenes: Mapping[str, Scene] = DEFAULT_SCENES,
) -> Scene:
    """The scene the room should show.

    Args:
        phase: Current session phase.
        override: Staff override scene name, or None to follow the phase.
        phase_scenes: Phase -> scene name.
        scenes: Scene name -> scene.

    Returns:
        The override if it is a known scene, else the phase's scene, else "off" (an
        unknown override or a broken table never leaves the caller without a scene; reject
        unknown overrides up front with `check_scene`).
    """
    if override is not None and override in scenes:
        return scenes[override]
    name = phase_scenes.get(phase)
    if name is not None and name in scenes:
        return scenes[name]
    return scenes.get("off", Scene("off", BLACK, 0.0))


@dataclass(frozen=True)
class Fade:
    """A colour transition.

    Attributes:
        start: Colour at `started_at`.
        target: Colour at the end.
        started_at: When the fade began (aware UTC).
        duration_s: Length; <= 0 means the target applies at once.
    """

    start: RGB
    target: RGB
    started_at: datetime
    duration_s: float


def _progress(fade: Fade, now: datetime) -> float:
    if not (math.isfinite(fade.duration_s) and fade.duration_s > 0):
        return 1.0
    elapsed = (require_aware(now) - fade.started_at).total_seconds()
    return min(1.0, max(0.0, elapsed / fade.duration_s))


def _smoothstep(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def color_at(fade: Fade, now: datetime) -> RGB:
    """The colour `fade` shows at `now` (smoothstep-eased, clamped to 0..1).

    Before `started_at` (clock stepped back) this is `start`; after the end, `target`.
    """
    s = _smoothstep(_progress(fade, now))
    return clamp_rgb(
        (
            fade.start[0] + (fade.target[0] - fade.start[0]) * s,
            fade.start[1] + (fade.target[1] - fade.start[1]) * s,
            fade.start[2] + (fade.target[2] - fade.start[2]) * s,
        )
    )


def fade_done(fade: Fade, now: datetime) -> bool:
    """True once `now` is at or past the end of the fade."""
    return _progress(fade, now) >= 1.0


def fade_to(previous: Fade | None, target: RGB, now: datetime, duration_s: float) -> Fade:
    """Start a fade to `target` from what the light shows at `now`.

    Args:
        previous: The fade in progress (or finished), or None at start-up: the light is
            then assumed dark and fades up from black.
        target: Target colour (clamped to 0..1).
        now: Current time, aware UTC.
        duration_s: Fade length; non-finite or negative values mean "at once".

    Returns:
        The new fade.
    """
    now = require_aware(now)
    start = color_at(previous, now) if previous is not None else BLACK
    duration = duration_s if math.isfinite(duration_s) and duration_s > 0 else 0.0
    return Fade(start=start, target=clamp_rgb(target), started_at=now, duration_s=duration)


# -- dome light ------------------------------------------------------------------------


@dataclass(frozen=True)
class DomePattern:
    """What the dome light does: off, steady on, or blink with the given times."""

    kind: Literal["off", "steady", "blink"]
    on_s: float = 0.0
    off_s: float = 0.0


# -- status LED ------------------------------------------------------------------------


class StatusCode(enum.IntEnum):
    """Technician blink codes; the value is the number of blinks."""

    OK = 0
    BROKER_UNREACHABLE = 1
    MONITOR_SILENT = 2
    CLOCK_UNSYNCED = 3
    OUTBOX_FILLING = 4
    HARDWARE_FAULT = 5


STATUS_TEXT: dict[StatusCode, str] = {
    StatusCode.OK: "ok",
    StatusCode.BROKER_UNREACHABLE: "broker unreachable",
    StatusCode.MONITOR_SILENT: "bedside monitor silent",
    StatusCode.CLOCK_UNSYNCED: "clock not synchronised",
    StatusCode.OUTBOX_FILLING: "outbox filling",
    StatusCode.HARDWARE_FAULT: "hardware fault (buttons or lights)",
}

OUTBOX_WARN_FILL = 0.8


def status_code(
    broker_connected: bool,
    monitor_ok: bool,
    clock_synced: bool,
    outbox_fill: float,
    hardware_ok: bool,
) -> StatusCode:
    """The most severe current problem (see the table in the module docstring).

    Args:
        broker_connected: MQTT link up.
        monitor_ok: Bedside monitor delivering readings (or not expected to).
        clock_synced: System clock synchronised (chrony).
        outbox_fill: Outbox depth / cap, 0..1 (NaN counts as full).
        hardware_ok: Buttons and lights initialised and responding.
    """
    if not hardware_ok:
        return StatusCode.HARDWARE_FAULT
    if not broker_connected:
        return StatusCode.BROKER_UNREACHABLE
    if not monitor_ok:
        return StatusCode.MONITOR_SILENT
    if math.isnan(outbox_fill) or outbox_fill >= OUTBOX_WARN_FILL:
        return StatusCode.OUTBOX_FILLING
    if not clock_synced:
        return StatusCode.CLOCK_UNSYNCED
    return StatusCode.OK


BLINK_ON_S = 0.25
BLINK_OFF_S = 0.35
CODE_PAUSE_S = 1.5


def blink_sequence(code: StatusCode) -> tuple[tuple[bool, float], ...]:
    """One cycle of the status LED as (led_on, seconds) steps, to repeat forever.

    OK is a slow heartbeat (1 s on, 2 s off: slow enough that the room's loop steps it at
    the wake-ups it makes anyway, see `firmware_py.status_led.StatusLed`). Code N is N blinks
    of 0.25 s on / 0.35 s off, then a further 1.5 s off (emitted as its own step).
    """
    if code == StatusCode.OK:
        return ((True, 1.0), (False, 2.0))
    blinks = ((True, BLINK_ON_S), (False, BLINK_OFF_S)) * int(code)
    return (*blinks, (False, CODE_PAUSE_S))
