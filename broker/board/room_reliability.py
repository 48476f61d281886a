"""Room reliability over a date range, pure: what the logger stored in, one row per room out.

How this works: `reliability(...)` takes the rows of `LogStore.report_rows` for the range
(`availability`, `availability_before`, `room_events`, `backlog`, `quarantine`), the range's
UTC bounds and the time the page was asked (`now`: an offline period still open ends there,
or at the range's end if that is earlier), and returns a `RoomReliability` per room:
- offline periods: from an `offline` availability (the room's Will or its clean stop) to the
  next `online`; a room already offline when the range starts is offline from its start;
- monitor disconnects: `monitor_link_lost` to `monitor_link_restored` (same rule);
- restarts: `daemon_started` events;
- the outbox backlog peak: the largest outbox depth a health message reported, when, and the
  oldest waiting message's age then (health messages whose outbox was empty are not read);
- quarantined messages: how many of the room's messages the logger refused, and the most
  common reason.
Availability times are the logger's (`received_at`); event and health times the room's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.timefmt import parse_ts


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    open: bool = False  # still going at the end of the range (or now)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class RoomReliability:
    room: str
    offline: list[Period] = field(default_factory=list)
    monitor_lost: list[Period] = field(default_factory=list)
    restarts: int = 0
    backlog_peak: int = 0
    backlog_peak_at: datetime | None = None
    backlog_oldest_s: float | None = None
    quarantined: int = 0
    quarantine_reason: str | None = None

    @property
    def offline_s(self) -> float:
        return sum(p.seconds for p in self.offline)

    @property
    def monitor_lost_s(self) -> float:
        return sum(p.seconds for p in self.monitor_lost)


def _periods(
    changes: Iterable[tuple[datetime, bool]], down_at_start: bool, start: datetime, end: datetime
) -> list[Period]:
    """Periods between a `True` (down) and the next `False` (up), clipped to [start, end]
    (a change stamped after `end`, by a room clock ahead of the logger's, is not counted)."""
    out: list[Period] = []
    since = start if down_at_start else None
    for at, down in changes:
        if down and since is None and at < end:
            since = max(at, start)
        elif not down and since is not None:
            out.append(Period(since, min(max(at, since), end)))
            since = None
    if since is not None and since < end:
        out.append(Period(since, end, open=True))
    return out


def reliability(
    start: datetime,
    end: datetime,
    now: datetime,
    availability: Iterable[dict[str, Any]] = (),
    availability_before: Iterable[dict[str, Any]] = (),
    room_events: Iterable[dict[str, Any]] = (),
    backlog: Iterable[dict[str, Any]] = (),
    quarantine: Iterable[dict[str, Any]] = (),
) -> list[RoomReliability]:
    """One row per room seen in any of the rows, by room name (rows oldest first)."""
    until = min(end, max(now, start))
    rooms: dict[str, RoomReliability] = {}

    def room(name: Any) -> RoomReliability:
        return rooms.setdefault(str(name), RoomReliability(str(name)))

    offline_at_start = {str(r["room"]) for r in availability_before if r["status"] == "offline"}
    for name in offline_at_start:
        room(name)
    changes: dict[str, list[tuple[datetime, bool]]] = {}
    for r in availability:
        changes.setdefault(str(r["room"]), []).append(
            (parse_ts(str(r["received_at"])), r["status"] == "offline")
        )
    for name in set(changes) | offline_at_start:
        room(name).offline = _periods(changes.get(name, []), name in offline_at_start, start, until)
    links: dict[str, list[tuple[datetime, bool]]] = {}
    for r in room_events:
        rec = room(r["room"])
        if r["kind"] == "daemon_started":
            rec.restarts += 1
        elif r["kind"] in ("monitor_link_lost", "monitor_link_restored"):
            links.setdefault(rec.room, []).append(
                (parse_ts(str(r["ts"])), r["kind"] == "monitor_link_lost")
            )
    for name, got in links.items():
        rooms[name].monitor_lost = _periods(got, False, start, until)
    for r in backlog:
        rec = room(r["room"])
        depth = int(r["depth"] or 0)
        if depth > rec.backlog_peak:
            rec.backlog_peak, rec.backlog_peak_at = depth, parse_ts(str(r["ts"]))
            age = r.get("oldest_age_s")
            rec.backlog_oldest_s = float(age) if age is not None else None
    reasons: dict[str, dict[str, int]] = {}
    for r in quarantine:
        rec = room(r["room"] or "(no room)")
        rec.quarantined += 1
        counted = reasons.setdefault(rec.room, {})
        reason = str(r["reason"])
        counted[reason] = counted.get(reason, 0) + 1
    for name, counted in reasons.items():
        rooms[name].quarantine_reason = max(sorted(counted), key=lambda k: counted[k])
    return [rooms[k] for k in sorted(rooms)]
