"""What goes into the room core and what comes out: typed events and actions.

The daemon (and the GPIO, monitor and MQTT adapters it owns) turns everything that happens
into one of the `Event` types below and hands it to `RoomCore.handle` with the time. The
core answers with `Action`s: outputs to set (dome, ambient, status LED, a simulated
button), messages to publish (a body for one of the contract's models; the outbox adds the
envelope and the `seq`) and `ResendRecent` after a reconnect. Every message batch is stored
together with the state the core returns from `RoomCore.state_blobs()`.

Nothing here is a bare string: buttons are an enum, events and actions frozen dataclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contract.messages import Envelope
from contract.staff import SimAction, SimButtonName
from contract.vitals import Reading
from controller.core.dome import DomeLayer


@dataclass(frozen=True)
class Instant:
    """When an event is handled: the wall clock (aware UTC) and the monotonic clock (s)."""

    wall: datetime
    mono: float


class Button(enum.Enum):
    """A room input, as the GPIO adapter reports it (each on the press edge)."""

    CALL = "call"  # patient call button down (at once)
    CALL_HELD = "call_held"  # call button still down after long_press_s: an emergency
    CANCEL = "cancel"  # cancel button down
    CANCEL_HELD = "cancel_held"  # cancel button still down after cleaning_hold_s: cleaning
    EMERGENCY = "emergency"  # emergency input (second button, code switch) down
    PRESENCE = "presence"  # staff presence input (wall button, switch, badge reader later)
    ASSIST = "assist"  # staff assist button
    BATH = "bath"  # restroom pull cord


@dataclass(frozen=True)
class MonitorFacts:
    """What the monitor link reports (its reader thread's counters)."""

    enabled: bool = False
    connected: bool = False
    last_reading_at: float | None = None  # seconds since the epoch
    frames_accepted: int = 0
    frames_rejected: int = 0


@dataclass(frozen=True)
class RoomFacts:
    """What the daemon samples from the edges for health: sent with `Started` and `Tick`."""

    hardware_ok: bool = True
    clock_synced: bool = False
    outbox_depth: int = 0
    outbox_cap: int = 1
    outbox_disk_full: bool = False
    outbox_oldest_age_s: float | None = None
    vitals_thinned: int = 0
    outbox_refused: int = 0
    # seq ranges (first, last) skipped after unclean stops, oldest first (`Outbox.seq_gaps`)
    seq_gaps: tuple[tuple[int, int], ...] = ()
    monitor: MonitorFacts = MonitorFacts()
    cert_not_after: float | None = None  # the room's client certificate (epoch seconds)


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The daemon starts: outputs, `daemon_started`, and every retained topic."""

    facts: RoomFacts


@dataclass(frozen=True)
class ButtonPressed:
    button: Button


@dataclass(frozen=True)
class CordChanged:
    """The call-cord loop (normally closed) opened or closed."""

    closed: bool
    loop: str = "cord"


@dataclass(frozen=True)
class ReadingReceived:
    reading: Reading


@dataclass(frozen=True)
class MessageReceived:
    """A message on the room's own subtree (a staff command, or sim input).

    `retained` is the flag as published (the link subscribes with retain-as-published).
    """

    topic: str
    payload: bytes
    retained: bool = False


@dataclass(frozen=True)
class LinkUp:
    session_present: bool


@dataclass(frozen=True)
class LinkDown:
    reason: str


@dataclass(frozen=True)
class Tick:
    """Timers: escalation, reminders, fades, monitor silence, periodic health."""

    facts: RoomFacts


Event = (
    Started
    | ButtonPressed
    | CordChanged
    | ReadingReceived
    | MessageReceived
    | LinkUp
    | LinkDown
    | Tick
)


# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SetDome:
    """The dome: `kind`/`on_s`/`off_s`/`colour` is the top layer (what a single lamp
    shows); `layers` is everything, most urgent first (`controller.core.dome`). Equality
    compares the pattern only (what a single-colour dome shows)."""

    kind: Literal["off", "steady", "blink"]
    on_s: float = 0.0
    off_s: float = 0.0
    colour: str = field(default="white", compare=False)
    layers: tuple[DomeLayer, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class SetAmbient:
    rgb: tuple[float, float, float]


@dataclass(frozen=True)
class SetStatusLed:
    sequence: tuple[tuple[bool, float], ...]


@dataclass(frozen=True)
class SetBuzzer:
    """The room's buzzer, if fitted: on while no screen or phone has confirmed a call."""

    on: bool


@dataclass(frozen=True)
class SimulateButton:
    """Drive a mock button pin (a `--simulate` room only)."""

    button: SimButtonName
    action: SimAction


@dataclass(frozen=True)
class Publish:
    """Store, then publish, one message: `body` is every field of `model` but the envelope."""

    model: type[Envelope]
    body: Mapping[str, Any]


@dataclass(frozen=True)
class ResendRecent:
    """After a (re)connect: resend what the broker acknowledged in the replay window."""


Action = (
    SetDome | SetAmbient | SetStatusLed | SetBuzzer | SimulateButton | Publish | ResendRecent
)
OUTPUT_ACTIONS = (SetDome, SetAmbient, SetStatusLed, SetBuzzer, SimulateButton)
