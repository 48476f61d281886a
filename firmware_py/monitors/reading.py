"""The one reading model every monitor parser returns (sans-IO, no dependencies)."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_py.monitors.vital_limits import VITAL_LIMITS

# The vitals fields of the message contract, in order (one table: vital_limits).
VITAL_NAMES: tuple[str, ...] = tuple(VITAL_LIMITS)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading from a bedside monitor.

    A value the monitor does not have is None (with a quality flag saying why), never 0.
    `received_at` is the controller's receive time (seconds since the epoch, from the
    parser's injected clock); `device_time` is the monitor's own clock as it sent it.
    """

    protocol: str
    received_at: float
    device_time: str | None = None
    spo2: float | None = None
    pulse_rate: float | None = None
    heart_rate: float | None = None
    pi: float | None = None
    nibp_sys: float | None = None
    nibp_dia: float | None = None
    nibp_mean: float | None = None
    resp_rate: float | None = None
    etco2: float | None = None
    temp_c: float | None = None
    alarms: tuple[str, ...] = field(default_factory=tuple)
    quality: tuple[str, ...] = field(default_factory=tuple)
    alarm_raw: str | None = None
    exc_raw: str | None = None

    def vitals(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in VITAL_NAMES}
