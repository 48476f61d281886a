"""Room configuration: one TOML file validated by pydantic, or command-line flags alone.

Loaded once in `main()` and passed down. A bad file gives one readable message per problem,
naming the file and the dotted field (`gpio.call_pin: ...`), never a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.messages import DEFAULT_COMMAND_MAX_AGE_S, IDENT_PATTERN, CallPriority, Phase
from controller.config_check import describe, with_lines

MonitorProtocol = Literal["masimo", "nonin-df2", "nonin-df7", "hl7"]
MonitorTransport = Literal["serial", "tcp-client", "mllp-listen"]

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


class GpioSettings(_Section):
    call_pin: int = 17
    cancel_pin: int = 27
    emergency_pin: int | None = 22
    dome_pin: int = 23
    ambient_red_pin: int = 12
    ambient_green_pin: int = 13
    ambient_blue_pin: int = 19
    status_pin: int = 24
    long_press_s: float = Field(default=2.0, gt=0.2, le=10)
    bounce_s: float = Field(default=0.05, ge=0, le=0.5)

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
    escalate_normal_s: float = Field(default=180, gt=0, le=3600)
    escalate_infusion_s: float = Field(default=90, gt=0, le=3600)
    escalate_emergency_s: float = Field(default=30, gt=0, le=3600)
    health_every_s: float = Field(default=30, ge=1, le=3600)

    def escalate_after(self) -> dict[CallPriority, float]:
        return {
            CallPriority.NORMAL: self.escalate_normal_s,
            CallPriority.INFUSION: self.escalate_infusion_s,
            CallPriority.EMERGENCY: self.escalate_emergency_s,
        }


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
