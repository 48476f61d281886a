"""The message contract: one pydantic model per payload of the topic tree.

Every message a room publishes (except `availability`, see below) is JSON with the
envelope `v, site, room, epoch, seq, ts, clock_synced`. The room daemon and the logger both import
these models; nothing else defines a payload.

`availability` (and the logger's `status`) are the plain strings `online` / `offline`: they
double as the MQTT Will, which is fixed at connect time and so cannot carry a `seq` or a
timestamp. This is the one exception to the envelope rule and `docs/CONTRACT.md` says so.
"""

from __future__ import annotations

import enum
import math
import re
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

from contract.timefmt import format_ts, require_aware
from contract.vitals import VITAL_LIMITS, VITAL_NAMES

# Schema 2 (issue 14): the retained `call` lists every active call (`calls`), the retained
# `state` carries presence, cleaning mode and the monitor's own alarms, and events have new
# kinds. Every field added is optional, so a version-1 message (a room not yet upgraded)
# still validates and the logger and the board accept both; `SUPPORTED_VERSIONS` says which.
SCHEMA_VERSION: Literal[2] = 2
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2)
# A site, room or person id: it becomes a topic segment, a file name, a certificate CN.
# Always checked whole (`is_ident`: fullmatch; pydantic's patterns match the whole string):
# Python's `re.match` with `$` would accept a trailing newline ("101\n"), which Mosquitto
# refuses as a malformed topic and paho then resends for ever.
IDENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
IDENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def is_ident(value: object) -> bool:
    """True when `value` is a whole, valid id (no trailing newline, no `/`, `+`, `#`)."""
    return isinstance(value, str) and IDENT_RE.fullmatch(value) is not None


AVAILABILITY_VALUES = ("online", "offline")


UtcDatetime = Annotated[
    datetime,
    AfterValidator(require_aware),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
Who = Annotated[str, Field(min_length=1, max_length=64)]


class Phase(enum.StrEnum):
    IDLE = "idle"
    PRE_CHECK = "pre_check"
    INFUSION = "infusion"
    RECOVERY = "recovery"
    DISCHARGE_READY = "discharge_ready"


# The legal moves between phases: the room enforces them (controller/core/phases.py), the
# board offers only these next (one table, here, for both).
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.PRE_CHECK}),
    Phase.PRE_CHECK: frozenset({Phase.INFUSION, Phase.IDLE}),
    Phase.INFUSION: frozenset({Phase.RECOVERY}),
    Phase.RECOVERY: frozenset({Phase.DISCHARGE_READY}),
    Phase.DISCHARGE_READY: frozenset({Phase.IDLE}),
}


class CallPriority(enum.StrEnum):
    """How urgent a call is; `CALL_PRIORITY_RANK` orders them (higher is more urgent).

    `trouble` is equipment trouble (a call cord out), below every patient call; `high` is
    a bath/restroom call or a staff assist; `infusion` is a patient call during an infusion.
    """

    TROUBLE = "trouble"
    NORMAL = "normal"
    INFUSION = "infusion"
    HIGH = "high"
    EMERGENCY = "emergency"


CALL_PRIORITY_RANK: dict[CallPriority, int] = {p: n for n, p in enumerate(CallPriority)}


class CallType(enum.StrEnum):
    """What kind of call: each is one row of the room's call-type table (config)."""

    NORMAL = "normal"  # patient call (button or pillow speaker)
    BATH = "bath"  # restroom pull cord
    ASSIST = "assist"  # staff assist: a nurse in the room needs a colleague
    EMERGENCY = "emergency"  # code / staff emergency (also a long press on the call button)
    CORD_OUT = "cord_out"  # trouble: a call cord or pendant unplugged (loop open)
    TEST = "test"  # a test call staff asked for from the board (`cmd/test_call`): TEST everywhere


class CallStatus(enum.StrEnum):
    IDLE = "idle"
    PLACED = "placed"
    CLAIMED = "claimed"
    ESCALATED = "escalated"


class EventKind(enum.StrEnum):
    DAEMON_STARTED = "daemon_started"
    CALL_PLACED = "call_placed"
    CALL_PRIORITY_RAISED = "call_priority_raised"
    CALL_CLAIMED = "call_claimed"
    CALL_ESCALATED = "call_escalated"
    CALL_CANCELLED = "call_cancelled"
    PHASE_CHANGED = "phase_changed"
    PHASE_REFUSED = "phase_refused"
    PHASE_OVERRUN = "phase_overrun"
    ALERT_RAISED = "alert_raised"
    ALERT_CLEARED = "alert_cleared"
    SCENE_CHANGED = "scene_changed"
    COMMAND_REFUSED = "command_refused"
    MONITOR_LINK_LOST = "monitor_link_lost"
    MONITOR_LINK_RESTORED = "monitor_link_restored"
    CLOCK_STEPPED = "clock_stepped"
    # schema 2 (issue 14)
    CALL_REMINDER = "call_reminder"  # claimed but not cleared in the room: re-signalled
    PRESENCE_STARTED = "presence_started"
    PRESENCE_ENDED = "presence_ended"
    CORD_FLAPPING = "cord_flapping"  # a cord loop opening and closing: reported once
    CLEANING_STARTED = "cleaning_started"
    CLEANING_ENDED = "cleaning_ended"
    INPUT_IGNORED = "input_ignored"  # a routine press during cleaning mode
    # issue 15: no screen and no phone confirmed a call in time (escalated in the room), and
    # the first receipt after that
    CENTRAL_BLIND = "central_blind"
    CENTRAL_REACHED = "central_reached"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


EPOCH_PATTERN = r"^[0-9a-f]{16}$"
Epoch = Annotated[str, Field(pattern=EPOCH_PATTERN)]


def new_epoch() -> str:
    """A new numbering epoch: 64 random bits, as 16 lower-case hex digits."""
    return secrets.token_hex(8)


class Envelope(_Frozen):
    """Fields every room message carries. `(site, room, epoch, seq)` is unique.

    `epoch` names a numbering life of the room: a new random id whenever the room's store
    is created (first boot, re-imaged card, lost state), as Sparkplug's bdSeq pairs births
    with deaths. Within an epoch `seq` strictly increases; a new epoch starts again at 1
    (or above a replacement Pi's seq floor), and every consumer accepts it at once.
    """

    v: Literal[1, 2] = SCHEMA_VERSION
    site: Ident
    room: Ident
    epoch: Epoch
    seq: Annotated[int, Field(ge=1)]
    ts: UtcDatetime
    clock_synced: bool


# Physiological limits (one table, `contract.vitals`, which the parsers share): a value
# outside them is invalid, not clipped.
VITAL_FIELDS: tuple[str, ...] = VITAL_NAMES


def _vital(lo: float, hi: float) -> Any:
    return Field(default=None, ge=lo, le=hi)


VitalName = Literal[
    "spo2", "pulse_rate", "heart_rate", "pi", "nibp_sys", "nibp_dia", "nibp_mean",
    "resp_rate", "etco2", "temp_c",
]
TempSite = Literal[
    "body", "core", "skin", "axillary", "oral", "rectal", "ear", "tympanic", "gi", "blood"
]
OPTIONAL_VITALS_FIELDS = ("observed_at", "age_s", "temp_site", "alarm_details")
_Short = Annotated[str, Field(max_length=64)]


def wire_exclude(message: BaseModel) -> set[str]:
    """The optional vitals fields to leave out of a message's JSON: those that are absent,
    so a reading without per-value times is the same payload as before issue 18."""
    if not isinstance(message, VitalsMessage):
        return set()
    return {name for name in OPTIONAL_VITALS_FIELDS if getattr(message, name) is None}


class AlarmInfo(_Frozen):
    """One alarm of `VitalsMessage.alarms`, as the monitor described it (docs/MONITORS.md)."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=128)] | None = None
    priority: Literal["high", "medium", "low"] | None = None
    kind: Literal["physiological", "technical"] | None = None
    phase: _Short | None = None
    state: _Short | None = None
    time: Annotated[str, Field(max_length=40)] | None = None


class VitalsMessage(Envelope):
    """One reading from the bedside monitor. A missing value is null, never 0."""

    spo2: float | None = _vital(*VITAL_LIMITS["spo2"])
    pulse_rate: float | None = _vital(*VITAL_LIMITS["pulse_rate"])
    heart_rate: float | None = _vital(*VITAL_LIMITS["heart_rate"])
    pi: float | None = _vital(*VITAL_LIMITS["pi"])
    nibp_sys: float | None = _vital(*VITAL_LIMITS["nibp_sys"])
    nibp_dia: float | None = _vital(*VITAL_LIMITS["nibp_dia"])
    nibp_mean: float | None = _vital(*VITAL_LIMITS["nibp_mean"])
    resp_rate: float | None = _vital(*VITAL_LIMITS["resp_rate"])
    etco2: float | None = _vital(*VITAL_LIMITS["etco2"])
    temp_c: float | None = _vital(*VITAL_LIMITS["temp_c"])
    protocol: Annotated[str, Field(min_length=1, max_length=32)]
    device_time: str | None = Field(default=None, max_length=64)
    alarms: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    quality: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    alarm_raw: str | None = Field(default=None, max_length=64)
    exc_raw: str | None = Field(default=None, max_length=64)
    # Optional (issue 18; the room leaves them out of the JSON when absent, see
    # `wire_exclude`): each value's own observation
    # time as the device wrote it, its age when the monitor sent it, the temperature's body
    # site, and what the monitor said about each alarm in `alarms`.
    observed_at: dict[VitalName, Annotated[str, Field(max_length=40)]] | None = None
    age_s: dict[VitalName, Annotated[float, Field(ge=0, le=1e7)]] | None = None
    temp_site: TempSite | None = None
    alarm_details: list[AlarmInfo] | None = Field(default=None, max_length=32)

    @field_validator(*VITAL_FIELDS, mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a vital is a number, not a boolean")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("NaN and infinities are invalid")
        return value


class ActiveAlert(_Frozen):
    """A room alert: a vital-sign rule (`source: vitals`) or the monitor's own alarm
    (`source: monitor`, `field: monitor`, no threshold; `name` is the monitor's identifier)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    field: Annotated[str, Field(min_length=1, max_length=32)]
    severity: Literal["high", "medium", "low"] = "high"
    value: float | None = None
    threshold: float | None = None
    since: UtcDatetime
    source: Literal["vitals", "monitor"] = "vitals"


class Presence(_Frozen):
    """Staff present in the room (schema 2)."""

    since: UtcDatetime
    until: UtcDatetime | None = None  # when it ends by itself (the configured time)


class Cleaning(_Frozen):
    """Cleaning mode: routine call inputs ignored until `until` (schema 2)."""

    since: UtcDatetime
    until: UtcDatetime
    by: Who | None = None


class StateMessage(Envelope):
    """Retained session state of the room."""

    phase: Phase
    session_id: str | None = Field(default=None, max_length=64)
    since: UtcDatetime
    planned_end: UtcDatetime | None = None
    min_recovery_end: UtcDatetime | None = None
    overrun: bool = False
    alerts: list[ActiveAlert] = Field(default_factory=list, max_length=32)
    scene: str | None = Field(default=None, max_length=32)
    scene_override: bool = False
    presence: Presence | None = None
    cleaning: Cleaning | None = None
    cords_open: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=16
    )


MAX_ACTIVE_CALLS = 16
TIERS = (1, 2, 3)


class ActiveCall(_Frozen):
    """One active call of a room (schema 2): its own lifecycle and times.

    `tier` is the escalation tier (1 when placed; 2 and 3 as it waits unclaimed; kept after
    a claim), for the central side to route it. `reminders` counts how often a claimed call
    not yet cleared in the room was re-signalled.
    """

    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    type: CallType
    priority: CallPriority
    status: CallStatus
    tier: Annotated[int, Field(ge=1, le=3)] = 1
    placed_at: UtcDatetime
    claimed_by: Who | None = None
    claimed_at: UtcDatetime | None = None
    escalated_at: UtcDatetime | None = None
    tier_at: UtcDatetime | None = None
    reminders: Annotated[int, Field(ge=0)] = 0
    last_reminder_at: UtcDatetime | None = None
    trouble: bool = False


class CallMessage(Envelope):
    """Retained calls of the room.

    `calls` (schema 2) lists every active call, highest priority first (then oldest first);
    it is empty when there is none. The top-level fields describe the first of them (the
    one the dome shows), as in schema 1, so a consumer that knows only one call per room
    keeps working; status `idle` when there is no call.
    """

    call_id: str | None = Field(default=None, max_length=64)
    priority: CallPriority | None = None
    status: CallStatus
    placed_at: UtcDatetime | None = None
    claimed_by: Who | None = None
    claimed_at: UtcDatetime | None = None
    escalated_at: UtcDatetime | None = None
    type: CallType | None = None
    tier: Annotated[int, Field(ge=1, le=3)] | None = None
    calls: list[ActiveCall] = Field(default_factory=list, max_length=MAX_ACTIVE_CALLS)


Scalar = Annotated[str, Field(max_length=500)] | int | float | bool | None
DetailKey = Annotated[str, Field(min_length=1, max_length=64)]
# Every payload is bounded, so the largest valid message stays under the logger's 64 KB
# limit (tests/test_contract.py builds it); the room never queues what would be refused.
MAX_MESSAGE_BYTES = 65536


class EventMessage(Envelope):
    """A call or session event. Never retained."""

    kind: EventKind
    call_id: str | None = Field(default=None, max_length=64)
    priority: CallPriority | None = None
    phase: Phase | None = None
    from_phase: Phase | None = None
    session_id: str | None = Field(default=None, max_length=64)
    by: Who | None = None
    reason: str | None = Field(default=None, max_length=500)
    detail: dict[DetailKey, Scalar] = Field(default_factory=dict, max_length=32)


class PeripheralStatus(enum.StrEnum):
    OK = "ok"
    SILENT = "silent"
    DISCONNECTED = "disconnected"
    FAULT = "fault"
    DISABLED = "disabled"


class MonitorHealth(_Frozen):
    status: PeripheralStatus
    protocol: str | None = None
    transport: str | None = None
    last_reading_at: UtcDatetime | None = None
    frames_accepted: int = Field(default=0, ge=0)
    frames_rejected: int = Field(default=0, ge=0)


SEQ_GAPS_SHOWN = 20  # the latest skipped ranges a health message lists


class OutboxHealth(_Frozen):
    depth: int = Field(ge=0)
    oldest_age_s: float | None = Field(default=None, ge=0)
    cap: int = Field(ge=1)
    vitals_thinned: int = Field(default=0, ge=0)
    # Messages the broker would refuse (bigger than its packet limit): set aside in the room's
    # outbox, never sent, so they cannot hold back the messages after them.
    refused: int = Field(default=0, ge=0)
    # Seqs the room skipped after unclean stops (power cut, SIGKILL): telemetry sent from
    # memory may have used some, the rest were never used. `seqs_skipped` counts them over
    # the store's life; `seq_gaps` lists the latest ranges, (first, last), oldest first.
    seqs_skipped: int = Field(default=0, ge=0)
    seq_gaps: list[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]] = Field(
        default_factory=list, max_length=SEQ_GAPS_SHOWN
    )


class HealthMessage(Envelope):
    """Retained health of every peripheral, for the technician and the board.

    Clock sync is the envelope's `clock_synced`.
    """

    monitor: MonitorHealth
    buttons: PeripheralStatus
    lights: PeripheralStatus
    outbox: OutboxHealth
    status_code: Annotated[int, Field(ge=0, le=9)] = 0
    status_text: str = Field(default="ok", max_length=200)
    uptime_s: float = Field(ge=0)
    version: str = Field(max_length=64)
    # when the room's own MQTT client certificate expires (older rooms do not say)
    cert_not_after: UtcDatetime | None = None
