"""The room's health: its status code (the technician's blink code) and the health payload.

Pure: built from `RoomFacts` (sampled by the daemon from the edges), the link state and
the monitor verdict the core keeps, and the injected clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contract.messages import SEQ_GAPS_SHOWN
from controller.config import RoomConfig
from controller.core import lighting
from controller.core.io_types import RoomFacts


def status_code(facts: RoomFacts, link_up: bool, monitor_ok: bool) -> lighting.StatusCode:
    fill = 1.0 if facts.outbox_disk_full else facts.outbox_depth / facts.outbox_cap
    return lighting.status_code(
        broker_connected=link_up,
        monitor_ok=monitor_ok,
        clock_synced=facts.clock_synced,
        outbox_fill=fill,
        hardware_ok=facts.hardware_ok,
    )


def health_key(facts: RoomFacts, link_up: bool, monitor_ok: bool) -> tuple[Any, ...]:
    """What a health message says that is worth publishing at once when it changes."""
    return (
        status_code(facts, link_up, monitor_ok),
        monitor_ok,
        facts.clock_synced,
        facts.hardware_ok,
        facts.vitals_thinned,
        facts.outbox_refused,
    )


def health_body(
    config: RoomConfig,
    facts: RoomFacts,
    *,
    link_up: bool,
    monitor_ok: bool,
    uptime_s: float,
    version: str,
) -> dict[str, Any]:
    """Every field of a `HealthMessage` but the envelope."""
    code = status_code(facts, link_up, monitor_ok)
    mon = facts.monitor
    last = mon.last_reading_at
    ok = "ok" if facts.hardware_ok else "fault"
    return {
        "monitor": {
            "status": ("ok" if monitor_ok else "silent") if mon.enabled else "disabled",
            "protocol": config.monitor.protocol,
            "transport": config.monitor.transport if mon.enabled else None,
            "last_reading_at": datetime.fromtimestamp(last, UTC) if last else None,
            "frames_accepted": mon.frames_accepted,
            "frames_rejected": mon.frames_rejected,
        },
        "buttons": ok,
        "lights": ok,
        "outbox": {
            "depth": facts.outbox_depth,
            "oldest_age_s": facts.outbox_oldest_age_s,
            "cap": facts.outbox_cap,
            "vitals_thinned": facts.vitals_thinned,
            "refused": facts.outbox_refused,
            "seqs_skipped": sum(last - first + 1 for first, last in facts.seq_gaps),
            "seq_gaps": [list(gap) for gap in facts.seq_gaps[-SEQ_GAPS_SHOWN:]],
        },
        "status_code": int(code),
        "status_text": lighting.STATUS_TEXT[code],
        "uptime_s": round(max(0.0, uptime_s), 1),
        "version": version,
        "cert_not_after": (
            datetime.fromtimestamp(facts.cert_not_after, UTC) if facts.cert_not_after else None
        ),
    }


class HealthCadence:
    """When health is published: at once when what it says changes (`health_key`), every
    `every_s`, when forced, or when an event marked it `due` (published at the next Tick,
    with fresh facts)."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.due = False
        self._key: tuple[Any, ...] | None = None
        self._last_mono: float | None = None

    def seconds_to_next(self, mono: float) -> float:
        """How long until the periodic publish is due (0 if due now)."""
        if self.due or self._last_mono is None:
            return 0.0
        return max(0.0, self._last_mono + self.every_s - mono)

    def step(self, key: tuple[Any, ...], mono: float, force: bool) -> tuple[bool, bool]:
        """Return (what it says changed, publish now)."""
        changed = key != self._key
        periodic = self._last_mono is None or mono - self._last_mono >= self.every_s
        publish = force or self.due or periodic or changed
        if publish:
            self._key, self._last_mono, self.due = key, mono, False
        return changed, publish


# An outbox whose oldest message has waited this long is "backing up" (the broker link is
# down or slow): worth one WARNING line in the journal, and one more when it has drained.
BACKLOG_WARN_AGE_S = 60.0


@dataclass
class Conditions:
    """Turns sampled facts into journal lines a technician reads (`journalctl -u
    roomctl-room`): one WARNING when a condition starts, one line when it ends, never a
    line per tick. `update` returns (logging level, message) pairs; the core logs them."""

    clock_bad: bool = False
    backlog: bool = False
    disk_full: bool = False

    def update(self, facts: RoomFacts) -> list[tuple[int, str]]:
        lines: list[tuple[int, str]] = []
        if not facts.clock_synced and not self.clock_bad:
            lines.append((logging.WARNING, "wall clock not synchronised (NTP): message times "
                          "may be wrong until it is; timers are unaffected"))  # fmt: skip
        elif facts.clock_synced and self.clock_bad:
            lines.append((logging.WARNING, "wall clock synchronised again"))
        self.clock_bad = not facts.clock_synced
        age = facts.outbox_oldest_age_s or 0.0
        waiting = facts.outbox_depth > 0 and age >= BACKLOG_WARN_AGE_S
        if waiting and not self.backlog:
            depth = facts.outbox_depth
            lines.append((logging.WARNING, f"outbox backing up: {depth} messages waiting, the "
                          f"oldest for {age:.0f} s (is the broker reachable?)"))  # fmt: skip
            self.backlog = True
        elif self.backlog and facts.outbox_depth == 0:
            lines.append((logging.WARNING, "outbox drained: every message delivered"))
            self.backlog = False
        if facts.outbox_disk_full and not self.disk_full:
            lines.append((logging.WARNING, "disk full: calls and events are kept in memory, "
                          "vitals are thinned until space is freed"))  # fmt: skip
        elif self.disk_full and not facts.outbox_disk_full:
            lines.append((logging.WARNING, "disk space is back"))
        self.disk_full = facts.outbox_disk_full
        return lines
