"""The live state of a site, as the board sees it: pure (no paho, no asyncio, no clock).

How this works: `SiteState.apply(room, leaf, payload, received_at)` takes one MQTT message of
the room topic tree (leaf = `state`, `call`, `vitals`, ...), validates it with the contract
models and keeps the latest of each per room (plus a short ring of events and vitals).
Invalid payloads are counted and ignored (the logger quarantines them; the board only shows).
A retained message on a topic the contract does not retain (`events`, `vitals`) is stale by
nature (the broker hands it to every new subscriber): it is ignored and counted in
`retained_ignored`, never shown as live.
`view(room, now)` turns a room into the JSON-ready dict the browser tiles and the terminal
table draw, with the room's recent staff commands and what became of them (`commands.py`:
sent, then applied or refused from the room's own answer, or no answer). Thread safety: one
lock around every read and write; callers may use it from the MQTT thread and from the web
server's loop.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contract import messages, staff, topics
from contract.messages import (
    PHASE_TRANSITIONS,
    CallMessage,
    EventMessage,
    HealthMessage,
    StateMessage,
    VitalsMessage,
)
from contract.timefmt import format_ts
from contract.vitals import DEMO_FLAG

from . import call_proof
from .calls_view import calls_view
from .commands import CommandLog, TrackedCommand
from .room_parts import event_dict, trouble, vitals_view
from .thresholds import out_of_range

EVENTS_KEPT = 100
VITALS_KEPT = 3600  # one hour at 1 Hz per room
STALE_VITALS_S = 5.0  # a reading older than this is drawn greyed ("stale")

@dataclass
class RoomLive:
    room: str
    availability: str | None = None
    availability_at: float | None = None
    state: StateMessage | None = None
    call: CallMessage | None = None
    health: HealthMessage | None = None
    vitals: VitalsMessage | None = None
    vitals_at: float | None = None
    # The last reading that carried a blood pressure, and when it arrived: NIBP is measured
    # every few minutes and some monitors send it alone, so the tile keeps it with its age.
    nibp: VitalsMessage | None = None
    nibp_at: float | None = None
    events: deque[EventMessage] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    vitals_ring: deque[tuple[float, VitalsMessage]] = field(
        default_factory=lambda: deque(maxlen=VITALS_KEPT)
    )
    last_at: float | None = None
    version: int = 0
    # proof of delivery per call (`call_proof.py`): the notifier's pages, the receipts
    deliveries: call_proof.Deliveries = field(default_factory=dict)
    receipts: call_proof.Receipts = field(default_factory=dict)
    # The room's numbering epochs in the order this board first saw them: a re-imaged room
    # (new epoch, seq from 1 again) is newer at once, whatever its seq.
    epochs: list[str] = field(default_factory=list)

    def position(self, msg: messages.Envelope) -> tuple[int, int]:
        """Where a message stands in the room's history: (epoch order, seq)."""
        if msg.epoch not in self.epochs:
            self.epochs.append(msg.epoch)
        return self.epochs.index(msg.epoch), msg.seq


@dataclass(frozen=True)
class Applied:
    """What one message changed: the room, and which part (`leaf`)."""

    room: str
    leaf: str


_MODELS: dict[str, type[messages.Envelope]] = {
    "state": StateMessage,
    "call": CallMessage,
    "health": HealthMessage,
    "vitals": VitalsMessage,
    "events": EventMessage,
}


class SiteState:
    """Latest known state of every room of one site."""

    def __init__(self, site: str):
        self.site = site
        self.rooms: dict[str, RoomLive] = {}
        self.rejected = 0
        self.retained_ignored = 0
        self.loggers: dict[str, str] = {}  # each logger's status ('' = the unnamed one)
        self.assignments: dict[str, staff.ShiftAssignments] = {}  # by publishing identity
        self._commands = CommandLog()
        self._lock = threading.Lock()
        # Called with (room, event) for every event taken, outside the lock (metrics).
        self.event_observers: list[Callable[[str, EventMessage], None]] = []

    def apply(
        self, room: str, leaf: str, payload: bytes, received_at: float, retained: bool = False
    ) -> Applied | None:
        """Take one message; return what changed, or None (ignored or invalid).

        `retained`: the message's MQTT retain flag; on a non-retained leaf it is ignored.
        """
        if retained and leaf in _MODELS and not topics.SPEC_BY_LEAF[leaf].retained:
            with self._lock:
                self.retained_ignored += 1
            return None
        if leaf == "availability":
            text = payload.decode("utf-8", "replace").strip()
            if text not in messages.AVAILABILITY_VALUES:
                return self._reject()
            with self._lock:
                r = self._room(room)
                r.availability, r.availability_at = text, received_at
                r.version += 1
            return Applied(room, leaf)
        if leaf == "receipt":
            return self._receipt(room, payload, retained)
        if leaf == "page":
            return None if retained else self._page(room, payload)
        model = _MODELS.get(leaf)
        if model is None:  # cmd/..., sim/...: not the room's own state
            return None
        if not payload:  # a cleared retained topic
            return None
        try:
            msg = model.model_validate_json(payload)
        except ValidationError:
            return self._reject()
        if msg.site != self.site or msg.room != room:
            return self._reject()
        with self._lock:
            r = self._room(room)
            here = r.position(msg)
            if isinstance(msg, StateMessage):
                if r.state is not None and here < r.position(r.state):
                    return None  # an older retained copy after a newer live one
                r.state = msg
            elif isinstance(msg, CallMessage):
                if r.call is not None and here < r.position(r.call):
                    return None
                r.call = msg
            elif isinstance(msg, HealthMessage):
                r.health = msg
            elif isinstance(msg, VitalsMessage):
                r.vitals, r.vitals_at = msg, received_at
                r.vitals_ring.append((received_at, msg))
                if msg.nibp_sys is not None:
                    r.nibp, r.nibp_at = msg, received_at
            elif isinstance(msg, EventMessage):
                r.events.append(msg)
                self._commands.answer(room, msg, received_at)
            r.last_at = received_at
            r.version += 1
        if isinstance(msg, EventMessage):
            for observe in self.event_observers:
                observe(room, msg)
        return Applied(room, leaf)

    def command_sent(
        self, room: str, name: str, by: str, request_id: str, sent_at: float, what: str = ""
    ) -> None:
        """Track a staff command about to be published: `sent` until the room answers."""
        with self._lock:
            self._commands.register(TrackedCommand(room, name, by, request_id, sent_at, what))

    def command_not_sent(self, room: str, request_id: str) -> None:
        with self._lock:
            self._commands.forget(room, request_id)

    def commands(self, room: str, now: float) -> list[dict[str, Any]]:
        """The room's recent commands, newest first, with their status at `now`."""
        with self._lock:
            return self._commands.recent(room, now)

    def _page(self, room: str, payload: bytes) -> Applied | None:
        """A notifier's page attempt about a call of the room (DeliveryReport on the room's
        `page/<notifier>`): kept on its call."""
        try:
            report = staff.DeliveryReport.model_validate_json(payload)
        except ValidationError:
            return self._reject()
        if report.room != room:
            return self._reject()
        with self._lock:
            r = self._room(room)
            call_proof.add_delivery(r.deliveries, report)
            r.version += 1
        return Applied(room, "page")

    def _receipt(self, room: str, payload: bytes, retained: bool) -> Applied | None:
        """A screen or a phone has a call of the room (CallReceipt): kept on the call."""
        if retained:
            return None
        try:
            got = staff.CallReceipt.model_validate_json(payload)
        except ValidationError:
            return self._reject()
        with self._lock:
            r = self._room(room)
            call_proof.add_receipt(r.receipts, got)
            r.version += 1
        return Applied(room, "receipt")

    def set_assignments(self, sender: str, payload: bytes) -> bool:
        """A retained ShiftAssignments from staff identity `sender`; False if invalid."""
        try:
            got = staff.ShiftAssignments.model_validate_json(payload) if payload else None
        except ValidationError:
            self._reject()
            return False
        with self._lock:
            if got is None:
                self.assignments.pop(sender, None)
            else:
                self.assignments[sender] = got
        return True

    def set_logger_status(self, payload: bytes, name: str = "") -> None:
        """A logger's retained status (`online`/`offline`; empty: the retained one cleared)."""
        status = payload.decode("utf-8", "replace").strip()
        with self._lock:
            if status:
                self.loggers[name] = status
            else:
                self.loggers.pop(name, None)

    @property
    def logger_status(self) -> str | None:
        """`offline` while any known logger is offline (redundant loggers still store, but one
        is down and IT must know), else `online`, or None before any status arrived."""
        with self._lock:
            if not self.loggers:
                return None
            return "offline" if "offline" in self.loggers.values() else "online"

    def logger_statuses(self) -> dict[str, str]:
        with self._lock:
            return dict(sorted(self.loggers.items()))

    def _reject(self) -> Applied | None:
        with self._lock:
            self.rejected += 1
        return None

    def _room(self, room: str) -> RoomLive:
        r = self.rooms.get(room)
        if r is None:
            r = self.rooms[room] = RoomLive(room)
        return r

    def room_ids(self) -> list[str]:
        with self._lock:
            return sorted(self.rooms)

    def view(self, room: str, now: float) -> dict[str, Any] | None:
        with self._lock:
            r = self.rooms.get(room)
            return None if r is None else self._view(r, now)

    def views(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(self.rooms[k], now) for k in sorted(self.rooms)]

    def _view(self, r: RoomLive, now: float) -> dict[str, Any]:
        return {**room_view(r, now), "commands": self._commands.recent(r.room, now)}

    def is_offline(self, room: str) -> bool:
        """The room said `offline` (or its Will did) and has not come back."""
        with self._lock:
            r = self.rooms.get(room)
            return r is not None and r.availability == "offline"

    def current_call(self, room: str) -> CallMessage | None:
        with self._lock:
            r = self.rooms.get(room)
            return None if r is None else r.call

    def health(self, room: str) -> HealthMessage | None:
        """The room's latest retained health, if any."""
        with self._lock:
            r = self.rooms.get(room)
            return None if r is None else r.health

    def active_call_ids(self, room: str) -> list[str]:
        """Every active call of the room (schema 2 lists them; schema 1 has one)."""
        with self._lock:
            r = self.rooms.get(room)
            return [] if r is None else [c["call_id"] for c in calls_view(r.call)]

    def recent_vitals(self, room: str) -> list[VitalsMessage]:
        with self._lock:
            r = self.rooms.get(room)
            return [] if r is None else [m for _, m in r.vitals_ring]

    def recent_events(self, room: str) -> list[EventMessage]:
        with self._lock:
            r = self.rooms.get(room)
            return [] if r is None else list(r.events)


def _ts(value: Any) -> str | None:
    return format_ts(value) if value is not None else None


def nibp_view(r: RoomLive, now: float) -> dict[str, Any] | None:
    """The last blood pressure and how old it is now: its age when the monitor sent it
    (`age_s`, from the value's own observation time) plus the time since it arrived."""
    if r.nibp is None or r.nibp_at is None:
        return None
    sent_age = (r.nibp.age_s or {}).get("nibp_sys", 0.0)
    return {
        "sys": r.nibp.nibp_sys,
        "dia": r.nibp.nibp_dia,
        "mean": r.nibp.nibp_mean,
        "observed_at": (r.nibp.observed_at or {}).get("nibp_sys"),
        "age_s": round(sent_age + max(0.0, now - r.nibp_at), 1),
        "at_ms": int(now * 1000),
    }
def room_view(r: RoomLive, now: float) -> dict[str, Any]:
    s, c, v = r.state, r.call, r.vitals
    calls = calls_view(c)
    for x in calls:
        x.update(call_proof.view(r.deliveries, r.receipts, x["call_id"]))
    call = calls[0] if calls else None
    alerts = []
    if s is not None:
        alerts = [
            {
                "name": a.name,
                "field": a.field,
                "severity": a.severity,
                "value": a.value,
                "threshold": a.threshold,
                "since": _ts(a.since),
                "source": a.source,
            }
            for a in s.alerts
        ]
    vitals_age = None if r.vitals_at is None else max(0.0, now - r.vitals_at)
    offline = r.availability == "offline"
    return {
        "room": r.room,
        "version": r.version,
        "availability": r.availability,
        "offline": offline,
        # when the board learnt that the room went offline (its Will or its goodbye)
        "offline_since": _ts(datetime.fromtimestamp(r.availability_at, UTC))
        if offline and r.availability_at is not None
        else None,
        # offline with a session under way: its calls cannot be known (a technical alarm)
        "offline_in_session": offline and s is not None and s.phase != messages.Phase.IDLE,
        "phase": s.phase.value if s else None,
        "phase_since": _ts(s.since) if s else None,
        "session_id": s.session_id if s else None,
        "planned_end": _ts(s.planned_end) if s else None,
        # what the phase dialog offers: the room's legal next phases, in the usual order
        "next_phases": sorted(
            (p.value for p in messages.Phase if s and p in PHASE_TRANSITIONS[s.phase]),
            key=lambda p: (p == "idle", list(messages.Phase).index(messages.Phase(p))),
        ),
        "min_recovery_end": _ts(s.min_recovery_end) if s else None,
        "overrun": bool(s and s.overrun),
        "alerts": alerts,
        "call": call,
        "calls": calls,
        "presence": None
        if s is None or s.presence is None
        else {"since": _ts(s.presence.since), "until": _ts(s.presence.until)},
        "cleaning": None
        if s is None or s.cleaning is None
        else {"since": _ts(s.cleaning.since), "until": _ts(s.cleaning.until), "by": s.cleaning.by},
        "cord_out": bool(s and s.cords_open) or any(x["type"] == "cord_out" for x in calls),
        "vitals": vitals_view(v) if v is not None else None,
        "out_of_range": out_of_range(alerts),
        "nibp": nibp_view(r, now),
        "demo": v is not None and DEMO_FLAG in v.quality,
        "vitals_received_ms": None if r.vitals_at is None else int(r.vitals_at * 1000),
        "vitals_stale": vitals_age is None or vitals_age > STALE_VITALS_S,
        "trouble": trouble(r, now),
        "last_event": event_dict(r.events[-1]) if r.events else None,
    }
