"""The room daemon: the thin I/O loop around the room core.

How this works: one thread (the daemon loop) owns the core and all state, and the MQTT
socket and the monitor's port too. gpiozero callbacks (and an MLLP listener's threads) only
post typed events to `self.events` (an `Inbox`: a queue whose put wakes the loop); paho's
callbacks and the monitor's parser run on the loop's own thread and post the same way. The
loop sleeps in one `select` on all of them (`IoWait`) until one has something or the next
deadline comes, takes the events, hands each to `RoomCore.handle` with the time, and
performs the actions it returns in order:
outputs at once (a press lights the dome before anything touches disk or network), then
the messages, stored with the room state in one outbox transaction, then handed to the
MQTT link. Vitals and health skip the disk when the broker acknowledges them within
`outbox.group_commit_s` (see `publisher.py`). A round ends with a `Tick` only when the
core has a deadline due (no busy ticking: the loop sleeps until the next deadline of the
core, of the held telemetry, of housekeeping or of the watchdog), then the outbox pump and
the systemd watchdog. A room therefore works with no broker at all.

PUBACKs take their own road (`_post_ack`): paho's callback appends them to `_acks_in`, and
they make a round only when something waits on them (a stored row, a full window, a
drain). A PUBACK of telemetry sent from memory changes nothing that cannot wait: it is read
off the socket at once but taken at the start of the next round (the next reading, or the
hold bound, before anything held is stored), which spares a round per reading (issue 17).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract import topics
from contract.certs import cert_not_after
from contract.mqtt import BrokerEndpoint
from contract.vitals import Reading
from controller import __version__
from controller.clock_sync import ClockSync
from controller.config import RoomConfig
from controller.core.io_types import (
    OUTPUT_ACTIONS,
    Action,
    Button,
    ButtonPressed,
    CordChanged,
    Event,
    Instant,
    MonitorFacts,
    Publish,
    ReadingReceived,
    ResendRecent,
    RoomFacts,
    Started,
    Tick,
)
from controller.core.room import STATE_KEYS, RoomCore
from controller.inbox import Inbox
from controller.io_wait import IoWait, make_monitor
from controller.mqtt_link import MqttLink, PubAck
from controller.outbox import Outbox, OutboxFull
from controller.publisher import Publisher, keep_unstored
from controller.room_hardware import RoomHardware
from controller.sdnotify import SystemdNotifier
from controller.state_lock import StateLock

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 3.0
PURGE_EVERY_S = 60.0  # also writes the buffered PUBACKs
CLOCK_CHECK_S = 10.0
MAX_BATCH = 500


def _cert_expiry(cert: Path | None) -> float | None:
    """When the room's client certificate expires (published in its health), if it can say."""
    if cert is None:
        return None
    try:
        return cert_not_after(cert).timestamp()
    except (OSError, ValueError) as exc:
        log.warning("cannot read the expiry of %s: %s", cert, exc)
        return None


@dataclass(frozen=True)
class Stop:
    reason: str


ACKS_WAITING = object()  # posted by `_post_ack` to wake the loop for PUBACKs


def now_instant() -> Instant:
    return Instant(datetime.now(UTC), time.monotonic())


class RoomDaemon:
    def __init__(
        self,
        config: RoomConfig,
        *,
        pin_factory: Any = None,
        notifier: SystemdNotifier | None = None,
        clock: Callable[[], Instant] = now_instant,
    ):
        self.config = config
        self.site, self.room = config.site, config.room
        self.events = Inbox()
        self.notifier = notifier or SystemdNotifier()
        self.internal_errors = 0
        self._now = clock
        self._clock = ClockSync(config.clock)
        self._clock_synced = self._clock.synced()
        self._clock_checked = time.monotonic()
        self._purged = time.monotonic()
        self._last_edge_key: tuple[object, ...] = ()
        self._stored_key: tuple[Any, ...] | None = None  # RoomCore.durable_key() last stored
        self._cert_not_after = _cert_expiry(config.broker.cert)

        config.state_dir.mkdir(parents=True, exist_ok=True)
        # one daemon per state folder (raises StateLocked, which `room run` reports)
        self.state_lock = StateLock(config.state_dir).acquire()
        self.outbox = Outbox(config.state_dir / "outbox.sqlite3", max_rows=config.outbox.max_rows)
        # recorded at open, fixed for this run: published in every health message
        self._seq_gaps = tuple(self.outbox.seq_gaps())
        if self.outbox.seqs_skipped:
            gap = self._seq_gaps[-1]
            log.warning(
                "unclean stop: seqs %d-%d skipped (telemetry sent but not stored may have "
                "used some; nothing stored is lost)",
                *gap,
            )
        self.publisher = Publisher(
            self.outbox,
            self.site,
            self.room,
            lambda: self._clock_synced,
            lambda: self._now().wall,
            config.outbox.window,
            max_packet_bytes=config.broker.max_packet_bytes,
            hold_s=config.outbox.group_commit_s,
            replay_window_s=config.broker.replay_window_s,
        )
        saved = {name: self.outbox.load_state(name) for name in STATE_KEYS}
        self.core = RoomCore(config, saved, self._now(), version=__version__)
        self._acks_in: deque[PubAck] = deque()  # from paho's callback, see `_post_ack`
        self._wake_on_ack = True  # False while every message in flight is held telemetry
        self._staged: list[Publish] = []  # stored by _flush
        self._unstored: list[Publish] = []  # kept while the disk is full

        self.hardware = RoomHardware(
            config, self._post_button, pin_factory=pin_factory, on_cord=self._post_cord
        )
        if self.hardware.cord_closed() is False:  # unplugged while the room was down
            self._post_cord(False)
        self.monitor = make_monitor(config, self._post_reading, self.events.wake)

        endpoint = BrokerEndpoint.from_url(
            config.broker.url, config.broker.ca, config.broker.cert, config.broker.key
        )
        subs = [
            topics.cmd_filter(self.site, self.room),
            topics.receipt_filter(self.site, self.room),
        ]
        if config.simulate:
            subs.append(topics.sim_button(self.site, self.room))
        self.link = MqttLink(
            endpoint,
            client_id=f"roomctl-{self.site}-{self.room}",
            will_topic=topics.availability(self.site, self.room),
            subscriptions=subs,
            # a logger coming (back) online asks every room for its replay window
            live_subscriptions=[topics.logger_status_filter(self.site)],
            post=self.events.put,
            post_ack=self._post_ack,
            keepalive_s=config.broker.keepalive_s,
            reconnect_min_s=config.broker.reconnect_min_s,
            reconnect_max_s=config.broker.reconnect_max_s,
            session_expiry_s=config.broker.session_expiry_s,
            max_inflight=config.outbox.window,
            wake=self.events.wake,
        )
        self.io = IoWait(self.events, self.link, self.monitor, self.hardware, self._io_error)

    # -- inputs (any thread) ------------------------------------------------------------

    def _post_button(self, button: Button) -> None:
        self.events.put(ButtonPressed(button))

    def _post_cord(self, closed: bool) -> None:
        self.events.put(CordChanged(closed))

    def _post_reading(self, reading: Reading) -> None:
        self.events.put(ReadingReceived(reading))

    def _io_error(self, what: str) -> None:
        """The loop's I/O hit a bug (logged with its traceback by `IoWait`): count it."""
        self.internal_errors += 1

    def _post_ack(self, ack: PubAck) -> None:
        """paho's callback: keep the PUBACK; make a round only if something waits on it."""
        self._acks_in.append(ack)
        if self._wake_on_ack:
            self.events.put(ACKS_WAITING)

    def stop(self, reason: str = "stop requested") -> None:
        self.events.put(Stop(reason))

    # -- run ----------------------------------------------------------------------------

    def run(self) -> None:
        self._guarded(self._feed, Started(self._facts()))
        if self.monitor is not None:
            self.monitor.start()
        self.link.start()
        self.notifier.ready(f"room {self.room} running")
        try:
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        round_at = self._next_round_at()
        while True:
            if not self.io.wait(round_at):
                continue  # broker traffic nothing waits on (a PUBACK of telemetry, a PINGRESP)
            batch: list[object] = []
            while len(batch) < MAX_BATCH and not self.events.empty():  # what is ready, bounded
                batch.append(self.events.get_nowait())  # the one reader: it is there
            if self._acks_in:
                self._guarded(self._take_acks, None)
            for item in batch:
                if isinstance(item, Stop):
                    log.info("stopping: %s", item.reason)
                    return
                self._guarded(self._handle, item)
            core_wait = self.core.seconds_to_next_deadline(self._now())
            core_at: float | None = time.monotonic() + core_wait  # kept unless the core ticks
            if core_wait <= 0:
                self._guarded(self._tick, None)
                core_at = None
            self._guarded(self._housekeeping, None)
            self._guarded(self._deliver, None)
            # an edge fact the health reports as soon as it changes has changed (a refused
            # row, thinned vitals, a GPIO fault, the clock): tick now, the loop sleeps
            # between the core's deadlines and nobody else would notice
            if self._edge_key() != self._last_edge_key:
                self._guarded(self._tick, None)
                self._guarded(self._deliver, None)
                core_at = None
            self._wake_on_ack = not self.publisher.acks_can_wait()
            self.notifier.ping_if_due()
            # the broker has usually answered what this round published by now: read it
            # while this round runs instead of waking for it right after (issue 17)
            self.io.read_link()
            round_at = self._next_round_at(core_at)

    def _guarded(self, func: Callable[[Any], None], arg: object) -> None:
        """Nothing crashes the daemon: a bug in one handler is logged and counted."""
        try:
            func(arg)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error handling %r", arg)
        finally:
            self._flush()

    def _take_acks(self, _: object = None) -> None:
        """The PUBACKs paho delivered so far (bounded: at most the in-flight window)."""
        for _n in range(len(self._acks_in)):
            ack = self._acks_in.popleft()
            self.publisher.on_puback(ack.mid, ack.ok, ack.reason)

    def _handle(self, item: object) -> None:
        if item is ACKS_WAITING:
            return  # a wake-up: the round has taken the PUBACKs already
        if isinstance(item, PubAck):
            self.publisher.on_puback(item.mid, item.ok, item.reason)
        else:
            self._feed(item)  # type: ignore[arg-type]  # everything else is a core Event

    def _feed(self, event: Event) -> None:
        self._perform(self.core.handle(event, self._now()))

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, OUTPUT_ACTIONS):
                self.hardware.perform(action)
            elif isinstance(action, Publish):
                self._staged.append(action)
            elif isinstance(action, ResendRecent):
                replayed = self.publisher.replay_recent(self.config.broker.replay_window_s)
                log.info("broker connected; resending %d recent messages", replayed)

    def _tick(self, _: object) -> None:
        self._last_edge_key = self._edge_key()
        self._feed(Tick(self._facts()))

    def _edge_key(self) -> tuple[object, ...]:
        """The facts whose change the health reports at once (cheap: attributes only)."""
        o = self.outbox
        return (o.refused, o.vitals_thinned, o.disk_full, self.hardware.ok, self._clock_synced)

    def _housekeeping(self, _: object) -> None:
        """The daemon's own timers: held telemetry, purge (with the PUBACKs), the clock."""
        self.publisher.store_held()
        mono = time.monotonic()
        if mono - self._purged >= PURGE_EVERY_S:
            self._purged = mono
            self.outbox.purge_acked(self.config.broker.replay_window_s)
            if self.outbox.disk_full and self.outbox.ensure_ballast():
                log.info("disk space is back: the outbox reserve is in place again")
        if mono - self._clock_checked >= CLOCK_CHECK_S:
            self._clock_checked = mono
            self._clock_synced = self._clock.synced()

    def _seconds_to_housekeeping(self) -> float:
        mono = time.monotonic()
        waits = [
            self._purged + PURGE_EVERY_S - mono,
            self._clock_checked + CLOCK_CHECK_S - mono,
        ]
        held = self.publisher.seconds_to_store()
        if held is not None:
            waits.append(held)
        return min(waits)

    def _facts(self) -> RoomFacts:
        """Sample what the core needs to know about the edges (cheap: once per tick)."""
        oldest = self.outbox.oldest_created()
        monitor = MonitorFacts()
        if self.monitor is not None:
            stats = self.monitor.stats()
            monitor = MonitorFacts(
                enabled=True,
                connected=bool(stats.get("connected")),
                last_reading_at=stats.get("last_reading_at"),
                frames_accepted=stats.get("frames_accepted", 0),
                frames_rejected=stats.get("frames_rejected", 0),
            )
        return RoomFacts(
            hardware_ok=self.hardware.ok,
            clock_synced=self._clock_synced,
            outbox_depth=self.outbox.depth,
            outbox_cap=self.outbox.max_rows,
            outbox_disk_full=self.outbox.disk_full,
            outbox_oldest_age_s=max(0.0, time.time() - oldest) if oldest else None,
            vitals_thinned=self.outbox.vitals_thinned,
            outbox_refused=self.outbox.refused,
            seq_gaps=self._seq_gaps,
            monitor=monitor,
            cert_not_after=self._cert_not_after,
        )

    def _flush(self) -> None:
        """Store everything the last handler produced, with the room state, in one transaction.

        A call, its events and its snapshot become durable together with one fsync. On a
        full disk, calls, events and snapshots stay in memory and are retried on the next
        flush; vitals are counted as thinned by the outbox.
        """
        if not self._staged and not self._unstored:
            return  # the common case: every round calls this after each handler
        staged = self._unstored + self._staged
        self._staged, self._unstored = [], []
        # the state's blobs are built and compared only when its frozen values changed (a
        # reading usually changes none: the cheapest path of the busiest event)
        key = self.core.durable_key()
        state: dict[str, Any] | None = None
        try:
            if self.publisher.can_hold(staged):
                if key != self._stored_key:
                    state = self.core.state_blobs()
                    if not self.outbox.state_changed(state):
                        self._stored_key = key
                if key == self._stored_key:
                    self.publisher.hold(staged, self.link if self.link.connected else None)
                    return
            self.publisher.enqueue_many(
                staged, state=state if state is not None else self.core.state_blobs()
            )
            self._stored_key = key
        except (OutboxFull, sqlite3.Error) as exc:
            dropped = sum(1 for m in staged if topics.SPEC_BY_MODEL[m.model].leaf == "vitals")
            self.outbox.count_dropped_vitals(dropped)
            self._unstored = keep_unstored(staged)
            log.error(
                "cannot store messages (%s): %d vitals counted as thinned, %d calls/events "
                "kept in memory until they can be stored",
                exc,
                dropped,
                len(self._unstored),
            )

    def _deliver(self, _: object) -> None:
        self.publisher.flush_acks()
        self.publisher.pump(self.link)

    def _next_round_at(self, core_at: float | None = None) -> float:
        """When the next round is due (monotonic) if no event comes first: the core's next
        deadline (`core_at` if the round already knows it), housekeeping's or the
        watchdog's. Only a round changes any of them, so wake-ups in between (broker
        traffic, the status LED) do not recompute it."""
        mono = time.monotonic()
        if core_at is None:
            core_at = mono + self.core.seconds_to_next_deadline(self._now())
        at = min(core_at, mono + self._seconds_to_housekeeping())
        wd = self.notifier.watchdog_due()
        if wd is not None:
            at = min(at, mono + wd)
        return max(mono, at)

    def _drain_before_stop(self, seconds: float) -> None:
        """On a clean stop, deliver what is stored (bounded); the rest waits on disk."""
        deadline = time.monotonic() + seconds
        self._wake_on_ack = True
        self._take_acks()
        while self.link.connected and self.outbox.depth > 0 and time.monotonic() < deadline:
            self.publisher.pump(self.link)
            self.link.poll(min(0.05, max(0.0, deadline - time.monotonic())))
            self._take_acks()
            self.publisher.flush_acks()

    def _shutdown(self) -> None:
        self.notifier.stopping()
        if self.monitor is not None:
            self.monitor.stop()
        try:
            self._drain_before_stop(SHUTDOWN_DRAIN_S)
            self.publisher.store_held(force=True)  # a clean stop loses no telemetry
        finally:
            self.link.stop()
            self.hardware.close()
            self.outbox.close()
            self.events.close()
            self.notifier.close()
            self.state_lock.release()
