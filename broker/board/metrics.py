"""The board's Prometheus metrics: what it knows live of every room, read at scrape time.

| metric | type | labels |
|---|---|---|
| `roomctl_board_rooms_online` | gauge | site |
| `roomctl_room_online` | gauge | site, room: 1 online, 0 offline (its Will) |
| `roomctl_room_in_session` | gauge | site, room: 1 while a session runs (phase not idle) |
| `roomctl_room_vitals_age_seconds` | gauge | site, room: since the last reading this board saw |
| `roomctl_room_outbox_depth` | gauge | site, room: from the room's retained health |
| `roomctl_room_monitor_up` | gauge | site, room: 1 monitor link ok, 0 silent/disconnected/fault |
| `roomctl_board_active_calls` | gauge | site, priority |
| `roomctl_board_call_response_seconds` | histogram | site, priority: placed to answered |
| `roomctl_board_sse_clients` | gauge | site: open event streams (browsers) |
| `roomctl_board_broker_connected` | gauge | site |
| `roomctl_board_logger_online` | gauge | site: the logger's retained status |
| `roomctl_board_messages_rejected_total` | counter | site: invalid room messages ignored |
| `roomctl_cert_expiry_timestamp_seconds` | gauge | site: the board's own certificates |

A call is answered when it is claimed, or when it ends in the room without a claim (a nurse
cancelled it at the bedside, or presence ended it): each call is observed once, when its first
`call_placed` and its first answer were both seen by this board.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.ops.metrics import CertExpiry
from contract.messages import CallPriority, CallStatus, EventKind, EventMessage, PeripheralStatus

from .live import SiteState

RESPONSE_BUCKETS = (5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600)
_CALLS_TRACKED = 1000  # placed calls remembered until answered (bounded)


class _Live(Collector):
    def __init__(
        self,
        site: str,
        state: SiteState,
        sse_clients: Callable[[], int],
        broker_up: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self.site, self.state, self.sse, self.broker_up, self.clock = (
            site, state, sse_clients, broker_up, clock,
        )  # fmt: skip

    def collect(self) -> Iterable[Metric]:
        site, now = self.site, self.clock()
        room_labels = ["site", "room"]
        online = GaugeMetricFamily("roomctl_room_online", "1 online, 0 offline", labels=room_labels)
        session = GaugeMetricFamily("roomctl_room_in_session", "1 while a session runs",
                                    labels=room_labels)  # fmt: skip
        age = GaugeMetricFamily("roomctl_room_vitals_age_seconds",
                                "Seconds since the room's last reading",
                                labels=room_labels)  # fmt: skip
        outbox = GaugeMetricFamily("roomctl_room_outbox_depth", "Messages waiting in the room",
                                   labels=room_labels)  # fmt: skip
        monitor = GaugeMetricFamily("roomctl_room_monitor_up", "1 when the monitor link is ok",
                                    labels=room_labels)  # fmt: skip
        calls: dict[str, int] = {p.value: 0 for p in CallPriority}
        n_online = 0
        for view in self.state.views(now):
            room = view["room"]
            if view["availability"] is not None:
                up = view["availability"] == "online"
                n_online += up
                online.add_metric([site, room], 1.0 if up else 0.0)
            session.add_metric([site, room], 0.0 if view["phase"] in (None, "idle") else 1.0)
            if view["vitals_received_ms"] is not None:
                age.add_metric([site, room], max(0.0, now - view["vitals_received_ms"] / 1000))
            for call in view.get("calls") or ([view["call"]] if view.get("call") else []):
                if call["status"] != CallStatus.IDLE.value:  # every active call (several per room)
                    priority = call["priority"] or "normal"
                    calls[priority] = calls.get(priority, 0) + 1
            health = self.state.health(room)
            if health is not None:
                outbox.add_metric([site, room], float(health.outbox.depth))
                if health.monitor.status is not PeripheralStatus.DISABLED:
                    ok = health.monitor.status is PeripheralStatus.OK
                    monitor.add_metric([site, room], 1.0 if ok else 0.0)
        yield from (online, session, age, outbox, monitor)
        yield _gauge("roomctl_board_rooms_online", "Rooms online", site, n_online)
        active = GaugeMetricFamily("roomctl_board_active_calls", "Active calls by priority",
                                   labels=["site", "priority"])  # fmt: skip
        for priority, n in sorted(calls.items()):
            active.add_metric([site, priority], n)
        yield active
        yield _gauge("roomctl_board_sse_clients", "Open event streams", site, self.sse())
        yield _gauge("roomctl_board_broker_connected", "1 when connected to the broker", site,
                     1.0 if self.broker_up() else 0.0)  # fmt: skip
        logger = 1.0 if self.state.logger_status == "online" else 0.0
        yield _gauge("roomctl_board_logger_online", "1 when the logger says online", site, logger)
        rejected = CounterMetricFamily("roomctl_board_messages_rejected",
                                       "Invalid room messages ignored",
                                       labels=["site"])  # fmt: skip
        rejected.add_metric([site], self.state.rejected)
        yield rejected


def _gauge(name: str, doc: str, site: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["site"])
    family.add_metric([site], value)
    return family


class BoardMetrics:
    """The board's registry; `observe_event` is a `SiteState` event observer."""

    def __init__(
        self,
        site: str,
        state: SiteState,
        sse_clients: Callable[[], int],
        broker_up: Callable[[], bool],
        cert_files: Sequence[Path | None] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.registry = CollectorRegistry(auto_describe=True)
        self.response = Histogram(
            "roomctl_board_call_response_seconds",
            "Seconds from a call placed to answered (claimed, or ended in the room)",
            ["site", "priority"], buckets=RESPONSE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._placed: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.registry.register(_Live(site, state, sse_clients, broker_up, clock))
        if any(cert_files):
            self.registry.register(CertExpiry(site, cert_files))
        state.event_observers.append(self.observe_event)

    def observe_event(self, room: str, event: EventMessage) -> None:
        if event.call_id is None:
            return
        key = (room, event.call_id)
        with self._lock:
            if event.kind is EventKind.CALL_PLACED:
                if key not in self._placed:
                    priority = event.priority.value if event.priority else "normal"
                    self._placed[key] = (event.ts.timestamp(), priority)
                    while len(self._placed) > _CALLS_TRACKED:
                        self._placed.popitem(last=False)
                return
            if event.kind not in (EventKind.CALL_CLAIMED, EventKind.CALL_CANCELLED):
                return
            placed = self._placed.pop(key, None)  # answered once: later events are not counted
        if placed is not None:
            at, priority = placed
            self.response.labels(self.site, priority).observe(max(0.0, event.ts.timestamp() - at))
