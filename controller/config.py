"""Room configuration: one TOML file validated by pydantic, or command-line flags alone.

Loaded once in `main()` and passed down. A bad file gives one readable message per problem,
naming the file and the dotted field (`gpio.call_pin: ...`), never a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.messages import IDENT_PATTERN, CallPriority, CallType, Phase
from contract.staff import DEFAULT_COMMAND_MAX_AGE_S
from controller.config_check import describe, with_lines
from controller.core.dome import DEFAULT_PALETTE, DEFAULT_ROLES
from firmware_py.monitors.dialect import DialectError, DialectSet, read_map_file

MonitorProtocol = Literal["masimo", "nonin-df2", "nonin-df7", "hl7"]
MonitorTransport = Literal["serial", "tcp-client", "mllp-listen"]
# HL7 dialects (firmware_py/monitors/dialect_tables/, docs/MONITORS.md); "auto" picks one per
# message from its header where that is safe.
MonitorDialect = Literal["auto", "mdc", "mindray-legacy", "nihon-kohden", "comen"]

# BCM numbers a Pi exposes on its 40-pin header.
BCM_PINS = range(0, 28)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=600)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)
    session_expiry_s: int = Field(default=86400, ge=0)
    # Acknowledged messages are resent on every reconnect for this long: it must exceed the
    # broker's autosave_interval (60 s in the generated config), see controller/outbox.py.
    replay_window_s: float = Field(default=180.0, ge=0, le=86400)
    # The broker's packet limit (`max_packet_size`, 128 KiB in the generated config) until the
    # broker announces its own in CONNACK: a bigger message is set aside, never sent.
    max_packet_bytes: int = Field(default=131_072, ge=4096, le=268_435_460)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from contract.mqtt import BrokerEndpoint

        BrokerEndpoint.from_url(value)
        return value

    @model_validator(mode="after")
    def _tls(self) -> BrokerSettings:
        from contract.mqtt import BrokerEndpoint

        BrokerEndpoint.from_url(self.url, self.ca, self.cert, self.key)
        return self


CallInput = Literal["call", "emergency", "assist", "bath"]
DEFAULT_INPUT_TYPES: dict[CallInput, CallType] = {
    "call": CallType.NORMAL,
    "emergency": CallType.EMERGENCY,
    "assist": CallType.ASSIST,
    "bath": CallType.BATH,
}


class GpioSettings(_Section):
    call_pin: int = 17
    cancel_pin: int = 27
    emergency_pin: int | None = 22
    # Inputs a room may not have (None: not wired). A `--simulate` room gives every input
    # a free mock pin, so `sim/button` can drive all of them.
    presence_pin: int | None = None
    assist_pin: int | None = None
    bath_pin: int | None = None
    # The call-cord / pendant jack: a normally-closed loop to ground (open = cord out).
    cord_pin: int | None = None
    dome_pin: int = 23
    ambient_red_pin: int = 12
    ambient_green_pin: int = 13
    ambient_blue_pin: int = 19
    status_pin: int = 24
    # A buzzer (active, on while the central side is blind to a call), if fitted.
    buzzer_pin: int | None = None
    long_press_s: float = Field(default=2.0, gt=0.2, le=10)
    bounce_s: float = Field(default=0.05, ge=0, le=0.5)
    # Which call type each call input places (a long press on `call` is always an emergency).
    call_types: dict[CallInput, CallType] = Field(default_factory=lambda: dict(DEFAULT_INPUT_TYPES))

    @field_validator("call_types")
    @classmethod
    def _no_trouble_input(cls, value: dict[CallInput, CallType]) -> dict[CallInput, CallType]:
        for name, call_type in value.items():
            if call_type is CallType.CORD_OUT:
                raise ValueError(
                    f"{name}: cord_out is the cord loop's own trouble call, not a call input"
                )
            if call_type is CallType.TEST:
                raise ValueError(f"{name}: test calls come from the board (cmd/test_call) only")
        return value

    @model_validator(mode="after")
    def _pins(self) -> GpioSettings:
        used: dict[int, str] = {}
        for name in type(self).model_fields:
            if not name.endswith("_pin"):
                continue
            pin = getattr(self, name)
            if pin is None:
                continue
            if pin not in BCM_PINS:
                raise ValueError(f"{name}={pin} is not a BCM GPIO number (0-27)")
            if pin in used:
                raise ValueError(f"{name} and {used[pin]} both use GPIO{pin}")
            used[pin] = name
        return self


class MonitorSettings(_Section):
    protocol: MonitorProtocol | None = None
    transport: MonitorTransport = "serial"
    address: str | None = None
    baudrate: int = Field(default=9600, ge=1200, le=921600)
    silence_s: float = Field(default=3.0, gt=0, le=120)
    dialect: MonitorDialect = "auto"
    # A technician's local map file (same shape as the dialect tables) laid over the dialect.
    dialect_map: Path | None = None
    # mllp-listen only: who may connect (the monitor's address or its link's network), how
    # many at once, and how long a connection may bring no HL7 message (firmware_py/monitors/
    # transports.py). Listening beyond loopback needs allowed_peers (and the firewall).
    allowed_peers: tuple[str, ...] = ()
    max_connections: int = Field(default=4, ge=1, le=16)
    idle_timeout_s: float = Field(default=60.0, ge=1, le=3600)

    @model_validator(mode="after")
    def _dialect(self) -> MonitorSettings:
        is_hl7 = self.protocol in (None, "hl7")
        if not is_hl7 and (self.dialect != "auto" or self.dialect_map is not None):
            raise ValueError("monitor.dialect and monitor.dialect_map apply to protocol hl7 only")
        if self.dialect_map is not None:
            try:
                DialectSet(self.dialect, read_map_file(self.dialect_map))
            except DialectError as exc:
                raise ValueError(str(exc)) from None
        return self

    @field_validator("allowed_peers")
    @classmethod
    def _peers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from firmware_py.monitors.transports import parse_peers

        parse_peers(value)
        return value

    @model_validator(mode="after")
    def _address(self) -> MonitorSettings:
        if self.protocol is None:
            return self
        if not self.address:
            raise ValueError("monitor.address is required when monitor.protocol is set")
        if self.transport != "serial":
            host, _, port = self.address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"monitor.address {self.address!r} must be HOST:PORT for {self.transport}"
                )
        if self.transport == "mllp-listen" and not self.allowed_peers:
            host = self.address.rpartition(":")[0].strip("[]")
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise ValueError(
                    f"monitor.allowed_peers is required: mllp-listen on {self.address!r} "
                    "would accept anyone on the network (give the monitor's address)"
                )
        if self.protocol == "hl7" and self.transport == "tcp-client":
            raise ValueError(
                "HL7 monitors push to the room: use transport 'mllp-listen' (or 'serial')"
            )
        return self


class TimingSettings(_Section):
    planned_pre_check_min: float = Field(default=15, gt=0, le=600)
    planned_infusion_min: float = Field(default=50, gt=0, le=600)
    planned_recovery_min: float = Field(default=45, gt=0, le=600)
    min_recovery_min: float = Field(default=30, ge=0, le=600)
    reminder_every_min: float = Field(default=5, gt=0, le=120)
    # First-tier timers of the default call-type rows (normal, infusion, emergency).
    escalate_normal_s: float = Field(default=180, gt=0, le=3600)
    escalate_infusion_s: float = Field(default=90, gt=0, le=3600)
    escalate_emergency_s: float = Field(default=30, gt=0, le=3600)
    health_every_s: float = Field(default=30, ge=1, le=3600)
    # A call no board screen and no phone confirmed (a receipt) within this is escalated in
    # the room: the dome strobes it and the buzzer sounds (0: off, for a site without them).
    central_receipt_s: float = Field(default=10, ge=0, le=600)


class AlertRuleSettings(_Section):
    name: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    field: Literal[
        "spo2",
        "pulse_rate",
        "heart_rate",
        "pi",
        "nibp_sys",
        "nibp_dia",
        "nibp_mean",
        "resp_rate",
        "etco2",
        "temp_c",
    ]
    op: Literal["below", "above"]
    threshold: float
    persistence_s: float = Field(default=10, ge=0, le=600)
    hysteresis: float = Field(default=2, ge=0)
    severity: Literal["high", "medium", "low"] = "high"


# The names of `controller.core.dome.PATTERNS` (tests/test_room_core_nursecall.py keeps them equal).
PatternName = Literal["off", "steady", "fast", "alert", "slow", "reminder", "trouble"]
EndWay = Literal["cancel", "presence", "cord"]
TierTimes = tuple[Annotated[float, Field(gt=0, le=3600)], Annotated[float, Field(gt=0, le=3600)]]


class CallTypeSettings(_Section):
    """One row of the call-type table (`controller.core.call_types`); unset fields keep
    the default row's value."""

    priority: CallPriority | None = None
    infusion_priority: CallPriority | None = None
    colour: str | None = Field(default=None, max_length=32)
    pattern: PatternName | None = None
    claimed_pattern: PatternName | None = None
    tier_s: TierTimes | None = None
    infusion_tier_s: TierTimes | None = None
    reminder_s: float | None = Field(default=None, ge=10, le=3600)
    ended_by: list[EndWay] | None = Field(default=None, min_length=1)
    in_cleaning: bool | None = None


class PresenceSettings(_Section):
    # Presence ends by itself after this long (None: only a second press ends it).
    max_min: float | None = Field(default=30, gt=0, le=720)


class CleaningSettings(_Section):
    minutes: float = Field(default=10, gt=0, le=120)
    hold_s: float = Field(default=5, ge=1, le=30)  # cancel held this long starts/ends it


class CordSettings(_Section):
    debounce_s: float = Field(default=2.0, ge=0, le=60)
    flap_window_s: float = Field(default=60, ge=5, le=3600)
    flap_count: int = Field(default=6, ge=3, le=100)


class MonitorAlarmSettings(_Section):
    """Monitor alarm identifier -> room alert priority (or `ignore`), over the defaults of
    `controller.core.monitor_alarms`; `unknown` is the priority of an identifier nobody
    mapped."""

    map: dict[
        Annotated[str, Field(min_length=1, max_length=64)],
        Literal["high", "medium", "low", "ignore"],
    ] = Field(default_factory=dict)
    unknown: Literal["high", "medium", "low"] = "medium"


RGBValue = tuple[
    Annotated[float, Field(ge=0, le=1)],
    Annotated[float, Field(ge=0, le=1)],
    Annotated[float, Field(ge=0, le=1)],
]


class DomeSettings(_Section):
    """The dome above the door: `single` (one lamp on `gpio.dome_pin`; priorities differ by
    blink pattern), `rgb` (one RGB lamp on `rgb_pins`) or `sections` (a lamp per colour)."""

    kind: Literal["single", "rgb", "sections"] = "single"
    rgb_pins: tuple[int, int, int] | None = None
    sections: dict[str, int] = Field(default_factory=dict)
    palette: dict[Annotated[str, Field(min_length=1, max_length=32)], RGBValue] = Field(
        default_factory=dict
    )
    roles: dict[Literal["alert", "trouble", "cleaning", "presence"], str] = Field(
        default_factory=dict
    )

    def full_palette(self) -> dict[str, tuple[float, float, float]]:
        return {**DEFAULT_PALETTE, **self.palette}

    def full_roles(self) -> dict[str, str]:
        roles = dict(DEFAULT_ROLES)
        roles.update(self.roles.items())
        return roles

    @model_validator(mode="after")
    def _hardware(self) -> DomeSettings:
        palette = self.full_palette()
        if self.kind == "rgb" and self.rgb_pins is None:
            raise ValueError("dome.rgb_pins (red, green, blue) is required for an rgb dome")
        if self.kind == "sections" and not self.sections:
            raise ValueError("dome.sections (colour = pin) is required for a sectioned dome")
        for where, colour in [
            *(("sections", c) for c in self.sections),
            *((f"roles.{r}", c) for r, c in self.roles.items()),
        ]:
            if colour not in palette:
                raise ValueError(f"dome.{where}: colour {colour!r} is not in the palette")
        return self


class CommandSettings(_Section):
    # A staff command older than this when it reaches the room is refused (expired): a
    # command sent to an offline room must not act minutes later when it reconnects.
    max_age_s: float = Field(default=DEFAULT_COMMAND_MAX_AGE_S, gt=0, le=3600)
    # Staff identities that act for people they authenticated themselves (the board logs
    # nurses in): their commands may carry another `by`. Any other sender must send its own
    # name as `by` (the topic's sender is what the broker's ACL proved).
    delegates: tuple[Annotated[str, Field(pattern=IDENT_PATTERN)], ...] = ("board",)


class OutboxSettings(_Section):
    max_rows: int = Field(default=200_000, ge=100)
    window: int = Field(default=100, ge=1, le=10_000)
    # vitals and health not acknowledged by the broker within this are stored together
    group_commit_s: float = Field(default=5.0, gt=0, le=60)


class RoomConfig(_Section):
    site: str = Field(pattern=IDENT_PATTERN)
    room: str = Field(pattern=IDENT_PATTERN)
    state_dir: Path = Path("/var/lib/roomctl")
    simulate: bool = False
    clock: Literal["auto", "synced", "unsynced"] = "auto"
    broker: BrokerSettings = BrokerSettings()
    gpio: GpioSettings = GpioSettings()
    monitor: MonitorSettings = MonitorSettings()
    timing: TimingSettings = TimingSettings()
    outbox: OutboxSettings = OutboxSettings()
    commands: CommandSettings = CommandSettings()
    # Per phase, the alert rules; a phase left out uses the defaults of controller.core.alerts.
    alerts: dict[Phase, list[AlertRuleSettings]] | None = None
    # Per phase, the lighting scene name; scenes are those of controller.core.lighting.
    scenes: dict[Phase, str] | None = None
    # Per call type, fields over the default row (controller.core.call_types).
    call_types: dict[CallType, CallTypeSettings] | None = None
    presence: PresenceSettings = PresenceSettings()
    cleaning: CleaningSettings = CleaningSettings()
    cord: CordSettings = CordSettings()
    monitor_alarms: MonitorAlarmSettings = MonitorAlarmSettings()
    dome: DomeSettings = DomeSettings()

    @model_validator(mode="after")
    def _rooms_rules(self) -> RoomConfig:
        used: dict[int, str] = {}
        for name in GpioSettings.model_fields:
            pin = getattr(self.gpio, name)
            if name.endswith("_pin") and pin is not None:
                used[pin] = f"gpio.{name}"
        extra = [(f"dome.rgb_pins[{n}]", p) for n, p in enumerate(self.dome.rgb_pins or ())]
        extra += [(f"dome.sections.{c}", p) for c, p in self.dome.sections.items()]
        for name, pin in extra:
            if pin not in BCM_PINS:
                raise ValueError(f"{name}={pin} is not a BCM GPIO number (0-27)")
            if pin in used:
                raise ValueError(f"{name} and {used[pin]} both use GPIO{pin}")
            used[pin] = name
        palette = self.dome.full_palette()
        for call_type, row in (self.call_types or {}).items():
            where = f"call_types.{call_type.value}"
            if row.colour is not None and row.colour not in palette:
                raise ValueError(f"{where}.colour: {row.colour!r} is not in the dome palette")
            ends = set(row.ended_by or ())
            if call_type in (CallType.ASSIST, CallType.EMERGENCY) and "presence" in ends:
                raise ValueError(f"{where}.ended_by: presence never ends {call_type.value}")
            if call_type is CallType.CORD_OUT and row.ended_by is not None and "cord" not in ends:
                raise ValueError(f"{where}.ended_by must include cord (the loop closing)")
            if call_type in (CallType.EMERGENCY, CallType.CORD_OUT) and row.in_cleaning is False:
                raise ValueError(f"{where}.in_cleaning: cleaning mode never ignores it")
        return self


class ConfigError(Exception):
    """A configuration problem, already phrased for a technician."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def load_config(path: Path | str, overrides: dict[str, Any] | None = None) -> RoomConfig:
    """Read and validate a TOML file; `overrides` (from flags) win over the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    try:
        return build_config(raw, overrides, source=str(path))
    except ConfigError as exc:  # say on which line of the file each problem is
        raise ConfigError(str(path), with_lines(text, exc.problems)) from None


def build_config(
    raw: dict[str, Any], overrides: dict[str, Any] | None = None, source: str = "flags"
) -> RoomConfig:
    merged = _merge(raw, overrides or {})
    try:
        return RoomConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(source, describe(exc, RoomConfig)) from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
