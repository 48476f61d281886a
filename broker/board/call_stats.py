"""The manager's call statistics, pure: call events in, tables out (no store, no clock, no I/O).

How this works: `call_records(rows)` folds the logger's call events and presence events
(`LogStore.report_rows("call_events", ...)`, oldest first) into one `CallRecord` per call;
`report(records, shifts, tz)` groups them by priority, call type, shift (all days, and
each day's), room and nurse, and
`ResponseStats` says, for each group, how many calls there were, how many were answered, and
the median, 90th percentile and longest response.

**Response** (docs/BOARD.md, the one definition every report uses): the seconds from the
call's `call_placed` to the first of
- a claim from a screen (`call_claimed`),
- staff presence registered in the room (`presence_started` in the call's room, at or after
  the placement),
- the call ended in the room (`call_cancelled`: the cancel button, presence, the cord put back).
A call with any of these is **answered**, whoever answered it; one with none is unanswered
(still open, or its end not logged). A call is counted under the highest priority and the
last type it had (a patient call turned emergency counts as an emergency). Its **nurse** is
who claimed it; a call answered in the room without a claim has no name and is listed as
`(in the room)`.

Percentiles are nearest-rank: p90 of n sorted values is the value at rank ceil(0.9 n), so
every figure is one real call's response time. Times are event times (the room's clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from contract.messages import CALL_PRIORITY_RANK, CallPriority, CallType
from contract.timefmt import parse_ts

UTC_ZONE = ZoneInfo("UTC")
IN_THE_ROOM = "(in the room)"
UNANSWERED = "(unanswered)"
TEST_CALL_TYPE = CallType.TEST.value  # staff testing the system: left out of every figure
HOW = ("claim", "presence", "cancel")  # how a call was first answered


@dataclass(frozen=True)
class Shift:
    """A named shift by local start and end time; it ends the next day when end <= start."""

    name: str
    start: time
    end: time

    def contains(self, t: time) -> bool:
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


DEFAULT_SHIFTS = (Shift("day", time(7), time(19)), Shift("night", time(19), time(7)))


def parse_shifts(text: str) -> tuple[Shift, ...]:
    """`"day=07:00-19:00,night=19:00-07:00"` -> shifts. They must cover the 24 hours without
    overlapping; the error names the shift that is wrong."""
    shifts: list[Shift] = []
    for part in (p.strip() for p in text.split(",")):
        name, _, span = part.partition("=")
        start, _, end = span.partition("-")
        try:
            shift = Shift(name.strip(), time.fromisoformat(start.strip()),
                          time.fromisoformat(end.strip()))  # fmt: skip
        except ValueError:
            raise ValueError(f"shift {part!r}: write name=HH:MM-HH:MM") from None
        if not shift.name or shift.start == shift.end:
            raise ValueError(f"shift {part!r}: needs a name and a start before its end")
        shifts.append(shift)
    for minute in range(0, 24 * 60, 1):
        t = time(minute // 60, minute % 60)
        owners = [s.name for s in shifts if s.contains(t)]
        if len(owners) != 1:
            what = "no shift" if not owners else f"shifts {', '.join(owners)} overlap"
            raise ValueError(f"shifts: {what} at {t:%H:%M}")
    return tuple(shifts)


def shift_of(at: datetime, shifts: Sequence[Shift], tz: ZoneInfo = UTC_ZONE) -> str:
    """`"2026-12-01 night"`: the shift an instant falls in, named by the local day it began."""
    local = at.astimezone(tz)
    for s in shifts:
        if s.contains(local.time()):
            began = local.date()
            if s.start > s.end and local.time() < s.end:
                began -= timedelta(days=1)
            return f"{began.isoformat()} {s.name}"
    raise ValueError("shifts do not cover the day")  # parse_shifts prevents it


def day_bounds(first: date, last: date, tz: ZoneInfo = UTC_ZONE) -> tuple[datetime, datetime]:
    """The UTC instants of local midnight starting `first` and ending `last` (inclusive days;
    a day with a clock change is 23 or 25 hours long)."""
    if last < first:
        raise ValueError("to must not be before from")
    start = datetime.combine(first, time(0), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


@dataclass
class CallRecord:
    """One call as the reports count it (see the module's definition of response)."""

    room: str
    call_id: str
    placed_at: datetime
    call_type: str = "normal"
    priority: str = ""  # the highest it had ("" until an event names one: then "normal")
    claimed_at: datetime | None = None
    claimed_by: str | None = None
    presence_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    escalated: bool = False

    @property
    def response(self) -> tuple[datetime, str] | None:
        """When and how the call was first answered, or None."""
        times = (self.claimed_at, self.presence_at, self.ended_at)
        got = [(t, how) for t, how in zip(times, HOW, strict=True) if t is not None]
        return min(got, key=lambda x: x[0]) if got else None

    @property
    def response_s(self) -> float | None:
        first = self.response
        return None if first is None else max(0.0, (first[0] - self.placed_at).total_seconds())

    @property
    def nurse(self) -> str:
        if self.claimed_by:
            return self.claimed_by
        return IN_THE_ROOM if self.response is not None else UNANSWERED


def _higher(a: str, b: str | None) -> str:
    if not b:
        return a
    if not a:
        return b
    try:
        return max(a, b, key=lambda p: CALL_PRIORITY_RANK[CallPriority(p)])
    except ValueError:  # an unknown priority from a newer room: keep the latest
        return b


def call_records(rows: Iterable[dict[str, Any]], tests: bool = False) -> list[CallRecord]:
    """Fold call and presence events (oldest first) into one record per call placed among
    them, in order of placement. Events of calls placed before the rows begin are ignored.
    Test calls are left out unless `tests` (the call log lists them, labelled)."""
    calls: dict[tuple[str, str], CallRecord] = {}
    open_by_room: dict[str, list[CallRecord]] = {}
    for row in rows:
        kind, room, at = str(row["kind"]), str(row["room"]), parse_ts(str(row["ts"]))
        detail = row.get("detail") or {}
        if kind == "presence_started":
            for waiting in open_by_room.get(room, []):
                if waiting.presence_at is None and at >= waiting.placed_at:
                    waiting.presence_at = at
            continue
        call_id = row.get("call_id")
        if not call_id:
            continue
        key = (room, str(call_id))
        rec = calls.get(key)
        if kind == "call_placed" and rec is None:
            rec = calls[key] = CallRecord(room, str(call_id), at)
            open_by_room.setdefault(room, []).append(rec)
        if rec is None:
            continue
        if row.get("priority"):
            rec.priority = _higher(rec.priority, str(row["priority"]))
        if detail.get("call_type"):
            rec.call_type = str(detail["call_type"])
        if kind == "call_claimed" and rec.claimed_at is None:
            rec.claimed_at, rec.claimed_by = at, row.get("by")
        elif kind == "call_escalated":
            rec.escalated = True
        elif kind == "call_cancelled" and rec.ended_at is None:
            rec.ended_at, rec.ended_by = at, detail.get("ended_by")
            rec.claimed_by = rec.claimed_by or row.get("by")
            open_by_room[room].remove(rec)
    for rec in calls.values():
        rec.priority = rec.priority or "normal"
    # a test call from the board (cmd/test_call) is staff checking the system, not a patient
    # waiting: it never counts in the response figures
    kept = [r for r in calls.values() if tests or r.call_type != TEST_CALL_TYPE]
    return sorted(kept, key=lambda r: (r.placed_at, r.room, r.call_id))


def nearest_rank(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0 < q <= 100) by nearest rank: the value at rank ceil(q/100 * n)."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(q / 100 * len(sorted_values))) - 1]


@dataclass(frozen=True)
class ResponseStats:
    """One row of a report table."""

    key: str
    calls: int
    answered: int
    median_s: float | None
    p90_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, key: str, records: Sequence[CallRecord]) -> ResponseStats:
        times = sorted(s for s in (r.response_s for r in records) if s is not None)
        return cls(key, len(records), len(times), nearest_rank(times, 50),
                   nearest_rank(times, 90), times[-1] if times else None)  # fmt: skip


TABLES = {
    "priority": "Response by priority",
    "type": "Response by call type",
    "shift": "Response by shift (all days)",
    "shift_day": "Response by shift, day by day",
    "room": "Response by room",
    "nurse": "Response by nurse",
}


@dataclass
class Report:
    """Every table of one date range (each `TABLES` key -> rows), and the whole range."""

    total: ResponseStats
    tables: dict[str, list[ResponseStats]] = field(default_factory=dict)
    how: dict[str, int] = field(default_factory=dict)  # first answer: claim/presence/cancel


def _priority_order(key: str) -> tuple[Any, ...]:
    try:
        return (-CALL_PRIORITY_RANK[CallPriority(key)], key)
    except ValueError:
        return (0, key)


def _as_is(key: str) -> tuple[Any, ...]:
    return (key,)


def report(
    records: Sequence[CallRecord],
    shifts: Sequence[Shift] = DEFAULT_SHIFTS,
    tz: ZoneInfo = UTC_ZONE,
) -> Report:
    """The tables of `records`: priorities most urgent first, shifts in time order, rooms and
    nurses by name (the unnamed rows last)."""
    keys: dict[str, Callable[[CallRecord], str]] = {
        "priority": lambda r: r.priority,
        "type": lambda r: r.call_type,
        "shift": lambda r: shift_of(r.placed_at, shifts, tz).partition(" ")[2],
        "shift_day": lambda r: shift_of(r.placed_at, shifts, tz),
        "room": lambda r: r.room,
        "nurse": lambda r: r.nurse,
    }
    names = [s.name for s in shifts]
    order: dict[str, Callable[[str], tuple[Any, ...]]] = {
        "priority": _priority_order,
        "shift": lambda k: (names.index(k),),
        "shift_day": lambda k: (k.partition(" ")[0], names.index(k.partition(" ")[2])),
        "nurse": lambda k: (k.startswith("("), k),
    }
    out = Report(ResponseStats.of("all calls", records))
    for name, key_of in keys.items():
        groups: dict[str, list[CallRecord]] = {}
        for rec in records:
            groups.setdefault(key_of(rec), []).append(rec)
        sort_key = order.get(name, _as_is)
        out.tables[name] = [ResponseStats.of(k, groups[k]) for k in sorted(groups, key=sort_key)]
    for rec in records:
        first = rec.response
        how = first[1] if first else "unanswered"
        out.how[how] = out.how.get(how, 0) + 1
    return out
