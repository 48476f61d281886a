"""Messages to and about a room from staff and the central services: staff commands
(`cmd/<name>/<sender>`: no envelope, they are not the room's; never retained), the simulated
buttons, the notifier's page reports, the board's shift assignments and the call receipts.
The room's own messages are in `contract.messages`; both are in `contract.topics`' one table.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from contract.messages import IDENT_PATTERN, Phase, UtcDatetime, Who, _Frozen

# -- commands from staff: no envelope (they are not the room's), never retained --


# How old a staff command may be when it reaches the room (the room's `commands.max_age_s`
# default, and the MQTT 5 message expiry the board sets).
DEFAULT_COMMAND_MAX_AGE_S = 30.0


class Command(_Frozen):
    """A staff command. Never retained; the room refuses one older than its max age.

    `by` is the sender's authenticated identity (the board's logged-in user, the CN of a
    staff certificate), never typed in by hand; `issued_at` is when it was sent (the board
    also sets the MQTT 5 message expiry, so the broker drops one that waits too long).
    """

    by: Who
    issued_at: UtcDatetime
    request_id: str | None = Field(default=None, max_length=64)


class PhaseCommand(Command):
    phase: Phase
    session_id: str | None = Field(default=None, max_length=64)
    planned_minutes: float | None = Field(default=None, gt=0, le=600)


class ClaimCommand(Command):
    call_id: Annotated[str, Field(min_length=1, max_length=64)]


class SceneCommand(Command):
    """Staff lighting override; `scene: null` hands the room back to its phase scene."""

    scene: str | None = Field(default=None, max_length=32)


class CleaningCommand(Command):
    """Start cleaning mode for `minutes` (the room's default when null), or end it (`0`)."""

    minutes: float | None = Field(default=None, ge=0, le=120)


class PlaceTestCallCommand(Command):
    """Ask the room to place a test call (type `test`, the lowest priority, never escalated):
    it lights the dome and reaches the board and the assigned nurse's phone (tier 1) labelled
    TEST, and is ended in the room like a patient call (cancel or presence)."""


SIM_BUTTONS = ("call", "cancel", "emergency", "presence", "assist", "bath")
SimButtonName = Literal["call", "cancel", "emergency", "presence", "assist", "bath", "cord"]
SimAction = Literal["press", "release", "open", "close"]


class SimButton(_Frozen):
    """Simulation only: drives a mock input pin of a `--simulate` room.

    A button (`call`, `cancel`, `emergency`, `presence`, `assist`, `bath`) is pressed or
    released; the cord loop (`cord`, normally closed) is opened or closed.
    """

    button: SimButtonName
    action: SimAction

    @model_validator(mode="after")
    def _action_fits(self) -> SimButton:
        cord = self.button == "cord"
        if cord != (self.action in ("open", "close")):
            want = "open or close" if cord else "press or release"
            raise ValueError(f"action {self.action!r} does not fit {self.button!r}: use {want}")
        return self


class DeliveryReport(_Frozen):
    """One page attempt of the notifier and its result (issue 15) on the room's `page/<name>`
    (not retained; `room` is the topic's): the logger keeps each, the board shows them."""

    room: Annotated[str, Field(min_length=1, max_length=63)]
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    tier: Annotated[int, Field(ge=1, le=3)]
    recipient: Who
    channel: Literal["webhook", "ntfy"]
    attempt: Annotated[int, Field(ge=1, le=1000)]
    ok: bool
    detail: Annotated[str, Field(max_length=500)]
    status: Literal["pending", "delivered", "failed", "cancelled"]
    at: UtcDatetime


RoomId = Annotated[str, Field(pattern=IDENT_PATTERN)]


class ShiftAssignments(_Frozen):
    """The charge nurse's rooms -> nurse for the shift (issue 15), as the board publishes them
    (retained) on `clinic/{site}/assignments/{name}`; the notifier pages tier 1 by them."""

    by: Who
    at: UtcDatetime
    rooms: dict[RoomId, Who] = Field(default_factory=dict, max_length=500)


class CallReceipt(_Frozen):
    """A call reached a board screen or a phone (issue 15): published, not retained, on the
    room's `receipt/<sender>` (the board's or the notifier's identity). The room escalates
    locally when no receipt for a call arrives in time; the logger keeps every receipt."""

    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    by: Who  # the person at the screen, or the nurse whose phone took it
    via: Literal["screen", "phone"]
    where: Annotated[str, Field(min_length=1, max_length=64)]  # the screen's id, the channel
    issued_at: UtcDatetime
