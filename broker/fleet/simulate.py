"""`roomctl fleet simulate`: many sites of rooms publishing what real rooms publish, to load the
central side (bridges, central brokers, loggers, PostgreSQL) without a thousand Pis.

How this works: one MQTT client per site (its broker: the site's own, or one broker for all);
each simulated room has its own numbering epoch (a new one per run, as a re-imaged room) and
seq counter, and every tick (1 s at `rate_hz=1`) publishes the contract's payloads at QoS 1 on
the room's own topics:
- `vitals` every tick (SpO2, pulse, NIBP, respiration; values move a little);
- `state` (retained) at start and at every phase change: idle -> pre_check -> infusion ->
  recovery -> idle over `session_ticks`, with `phase_changed` events;
- a call every `call_every` ticks (staggered by room): `call_placed` then, `call_hold` ticks
  later, `call_claimed` and `call_cancelled`, each with its `call` snapshot (retained).
Ticks are paced on the monotonic clock (a late tick is not made up twice); a room's seq
increases by one per message, so a consumer can check nothing is lost or doubled.
`ts` is the publish time: the central side measures publish -> committed latency from it.

A sample of rooms (`outbox_rooms`, each a `RoomPath`: the room package's `OutboxRoom`, found
by the CLI through the `roomctl.fleet` entry point) goes through the room's real outbox and
publisher instead: the room path adds the envelope (its own durable epoch and seq), stores
what the room stores, and gets its PUBACKs (paho's `on_publish`, queued, handed over on the
tick thread). The simulator does not replay on reconnect as a room daemon does.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from contract import messages, topics
from contract.mqtt import BrokerEndpoint, close_client, make_client

_PHASES = (
    messages.Phase.PRE_CHECK,
    messages.Phase.INFUSION,
    messages.Phase.RECOVERY,
    messages.Phase.IDLE,
)


class RoomLink(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int: ...


class RoomPath(Protocol):
    """A room's own publishing path (controller/fleet_room.py `OutboxRoom`)."""

    @property
    def epoch(self) -> str: ...

    @property
    def last_seq(self) -> int: ...

    def send(
        self, model: type[messages.Envelope], body: Mapping[str, Any], link: RoomLink
    ) -> None: ...

    def service(self, link: RoomLink, pubacks: Iterable[tuple[int, bool, str]]) -> None: ...

    def busy(self) -> bool: ...

    def close(self) -> None: ...


class _Link:
    """A sampled room's view of its site's MQTT client: remembers which room each mid is."""

    def __init__(self, client: mqtt.Client, room: str, owners: dict[int, str]):
        self.client, self.room, self.owners = client, room, owners

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        self.owners[info.mid] = self.room
        return int(info.mid)


@dataclass
class SimRoom:
    site: str
    room: str
    index: int
    epoch: str = field(default_factory=messages.new_epoch)
    seq: int = 0
    phase: messages.Phase = messages.Phase.IDLE
    session: int = 0
    call: int = 0
    path: RoomPath | None = None  # the room's real outbox and publisher, when sampled

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def sample_rooms(spec: FleetSpec, count: int) -> list[tuple[str, str]]:
    """`count` (site, room) pairs spread evenly over the fleet (every k-th room), for the real
    room path; ValueError if there are not that many rooms."""
    every = [(s, r) for s in spec.site_names() for r in spec.room_names()]
    if not 0 <= count <= len(every):
        raise ValueError(f"--outbox-rooms must be 0..{len(every)} (the fleet's rooms)")
    if count == 0:
        return []
    step = len(every) / count
    return [every[int(i * step)] for i in range(count)]


@dataclass(frozen=True)
class FleetSpec:
    sites: int
    rooms: int
    rate_hz: float = 1.0
    site_prefix: str = "site"
    session_ticks: int = 240  # pre-check, infusion, recovery, idle: a quarter each
    call_every: int = 120
    call_hold: int = 15

    def site_names(self) -> list[str]:
        width = max(2, len(str(self.sites)))
        return [f"{self.site_prefix}{n:0{width}d}" for n in range(1, self.sites + 1)]

    def room_names(self) -> list[str]:
        width = max(3, len(str(self.rooms)))
        return [f"r{n:0{width}d}" for n in range(1, self.rooms + 1)]


class SiteSimulator:
    """One site's rooms on one MQTT connection."""

    def __init__(
        self,
        spec: FleetSpec,
        site: str,
        endpoint: BrokerEndpoint,
        client_id: str,
        paths: Mapping[str, RoomPath] | None = None,
    ):
        self.spec = spec
        self.site = site
        paths = paths or {}
        self.rooms = [
            SimRoom(site, r, i, path=paths.get(r)) for i, r in enumerate(spec.room_names())
        ]
        for r in self.rooms:
            if r.path is not None:
                r.epoch, r.seq = r.path.epoch, r.path.last_seq
        self.published = 0
        self.published_vitals = 0
        self.unacked: deque[mqtt.MQTTMessageInfo] = deque()
        self.connected = threading.Event()
        self.endpoint = endpoint
        self.client = make_client(endpoint, client_id)
        self.client.max_queued_messages_set(0)  # paho keeps every QoS 1 message until PUBACK
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a, **k: self.connected.clear()
        # PUBACKs of the sampled rooms: queued by paho's thread, handed over by `service`
        self._pubacks: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()
        self._owners: dict[int, str] = {}  # mid -> sampled room
        self._links = {r.room: _Link(self.client, r.room, self._owners) for r in self.rooms
                       if r.path is not None}  # fmt: skip
        if self._links:
            self.client.on_publish = self._on_publish

    def _on_publish(
        self, c: mqtt.Client, u: object, mid: int, rc: Any = None, p: object = None
    ) -> None:
        failed = bool(getattr(rc, "is_failure", False))
        self._pubacks.put((mid, not failed, str(rc)))

    def service(self) -> None:
        """Hand the PUBACKs received to their sampled rooms; let each store and pump."""
        if not self._links:
            return
        got: dict[str, list[tuple[int, bool, str]]] = {room: [] for room in self._links}
        while True:
            try:
                ack = self._pubacks.get_nowait()
            except queue.Empty:
                break
            room = self._owners.pop(ack[0], None)
            if room is not None:
                got[room].append(ack)
        for r in self.rooms:
            if r.path is not None:
                r.path.service(self._links[r.room], got[r.room])
                r.seq = r.path.last_seq
    def _on_connect(
        self, c: mqtt.Client, u: object, f: object, rc: object, p: object = None
    ) -> None:
        if not getattr(rc, "is_failure", True):
            self.connected.set()

    def start(self, timeout: float = 20.0) -> SiteSimulator:
        self.client.connect_async(self.endpoint.host, self.endpoint.port)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"site {self.site}: no broker at {self.endpoint.url}")
        return self

    def drain(self, timeout: float) -> bool:
        """Wait (bounded) until the broker has acknowledged everything published."""
        deadline = time.monotonic() + timeout
        paths = [r.path for r in self.rooms if r.path is not None]
        while any(p.busy() for p in paths):
            if time.monotonic() > deadline:
                return False
            self.service()
            with contextlib.suppress(queue.Empty):  # the next PUBACK, or the hold bound
                self._pubacks.put(self._pubacks.get(timeout=0.1))
        while self.unacked:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.unacked[0].wait_for_publish(left)
            self._prune()
        return True

    def _prune(self) -> None:
        while self.unacked and self.unacked[0].is_published():
            self.unacked.popleft()

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)
        for r in self.rooms:
            if r.path is not None:
                r.path.close()

    def _send(
        self,
        room: SimRoom,
        model: type[messages.Envelope],
        now: datetime,
        body: dict[str, Any],
    ) -> None:
        """One message of the room: through its real outbox when sampled, else straight out
        with the simulator's own envelope."""
        spec = topics.SPEC_BY_MODEL[model]
        self.published += 1
        if room.path is not None:
            room.path.send(model, body, self._links[room.room])
            room.seq = room.path.last_seq
            return
        msg = model(**self._env(room, now), **body)
        topic = topics.room_topic(self.site, room.room, spec.leaf)
        info = self.client.publish(topic, msg.model_dump_json(), qos=1, retain=spec.retained)
        self.unacked.append(info)

    def _env(self, room: SimRoom, now: datetime) -> dict[str, object]:
        return {
            "site": self.site,
            "room": room.room,
            "epoch": room.epoch,
            "seq": room.next_seq(),
            "ts": now,
            "clock_synced": True,
        }

    def tick(self, n: int) -> None:
        """Publish tick `n` of every room."""
        spec = self.spec
        self._prune()
        self.service()
        for room in self.rooms:
            now = datetime.now(UTC)
            if n == 0:
                self._state(room, now)
            wobble = (n + room.index) % 7
            vitals = {
                "spo2": 95.0 + wobble % 4,
                "pulse_rate": 68.0 + wobble,
                "heart_rate": 68.0 + wobble,
                "nibp_sys": 118.0 + wobble,
                "nibp_dia": 76.0,
                "nibp_mean": 90.0,
                "resp_rate": 14.0,
                "protocol": "simulated",
            }
            self._send(room, messages.VitalsMessage, now, vitals)
            self.published_vitals += 1
            step = spec.session_ticks // len(_PHASES)
            if step and (n + room.index * 7) % step == 0 and n > 0:
                self._phase(room, now)
            at = (n + room.index * 11) % spec.call_every
            if n > 0 and at == 0:
                self._call(room, now, placed=True)
            elif n > 0 and at == min(spec.call_hold, spec.call_every // 2) and room.call:
                self._call(room, now, placed=False)

    def _state(self, room: SimRoom, now: datetime) -> None:
        session = f"{room.room}-{room.epoch[:6]}-{room.session}" if room.session else None
        state = {
            "phase": room.phase,
            "session_id": None if room.phase is messages.Phase.IDLE else session,
            "since": now,
        }
        self._send(room, messages.StateMessage, now, state)

    def _phase(self, room: SimRoom, now: datetime) -> None:
        before = room.phase
        room.phase = (
            _PHASES[(_PHASES.index(before) + 1) % len(_PHASES)]
            if before in _PHASES[:3]
            else _PHASES[0]
        )
        if room.phase is messages.Phase.PRE_CHECK:
            room.session += 1
        session = f"{room.room}-{room.epoch[:6]}-{room.session}"
        event = {
            "kind": messages.EventKind.PHASE_CHANGED,
            "phase": room.phase,
            "from_phase": before,
            "session_id": session,
        }
        self._send(room, messages.EventMessage, now, event)
        self._state(room, now)

    def _call(self, room: SimRoom, now: datetime, placed: bool) -> None:
        K = messages.EventKind
        if placed:
            room.call += 1
        call_id = f"{room.room}-{room.epoch[:6]}-c{room.call}"
        kinds = [K.CALL_PLACED] if placed else [K.CALL_CLAIMED, K.CALL_CANCELLED]
        for kind in kinds:
            event = {
                "kind": kind,
                "call_id": call_id,
                "priority": messages.CallPriority.NORMAL,
                "by": None if kind is K.CALL_PLACED else "sim-nurse",
            }
            self._send(room, messages.EventMessage, now, event)
        status = messages.CallStatus.PLACED if placed else messages.CallStatus.IDLE
        snapshot = {
            "call_id": call_id if placed else None,
            "priority": messages.CallPriority.NORMAL if placed else None,
            "status": status,
            "placed_at": now if placed else None,
        }
        self._send(room, messages.CallMessage, now, snapshot)


class Fleet:
    """Every site of a `FleetSpec`; `run(duration_s)` ticks them all at `rate_hz`."""

    def __init__(
        self,
        spec: FleetSpec,
        endpoints: list[BrokerEndpoint],
        client_prefix: str,
        paths: Mapping[tuple[str, str], RoomPath] | None = None,
    ):
        """`paths`: the sampled rooms' real publishing paths, by (site, room)."""
        names = spec.site_names()
        if len(endpoints) not in (1, len(names)):
            raise ValueError(f"give one broker for all sites or one per site ({len(names)})")
        self.spec = spec
        paths = paths or {}
        self.sites = [
            SiteSimulator(
                spec, s, endpoints[i % len(endpoints)], f"{client_prefix}-{s}",
                {room: p for (site, room), p in paths.items() if site == s},
            )
            for i, s in enumerate(names)
        ]  # fmt: skip
        self.ticks = 0
        self.late_ticks = 0

    @property
    def published(self) -> int:
        return sum(s.published for s in self.sites)

    def start(self) -> Fleet:
        for site in self.sites:
            site.start()
        return self

    def run(self, duration_s: float, stop: threading.Event | None = None) -> None:
        """Tick until `duration_s` has passed (or `stop` is set)."""
        stop = stop or threading.Event()
        period = 1.0 / self.spec.rate_hz
        began = time.monotonic()
        while not stop.is_set() and time.monotonic() - began < duration_s:
            for site in self.sites:
                site.tick(self.ticks)
            self.ticks += 1
            due = began + self.ticks * period
            late = time.monotonic() - due
            if late > period:  # we are behind: skip to now rather than burst to catch up
                self.late_ticks += 1
                began += late
                continue
            stop.wait(max(0.0, due - time.monotonic()))

    def stop(self, drain_s: float = 60.0) -> bool:
        """Wait for the brokers' acknowledgements (bounded), then disconnect; True if every
        message was acknowledged."""
        deadline = time.monotonic() + drain_s
        acked = all(site.drain(max(0.0, deadline - time.monotonic())) for site in self.sites)
        for site in self.sites:
            site.stop()
        return acked
