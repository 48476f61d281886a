"""`roomctl notify`: the notifier daemon.

How this works: the same MQTT adapter and site state as the board (`BoardFeed`, `SiteState`)
keep every room's calls; paho's thread only marks a room as changed. The main loop takes the
changed rooms and, for every call not yet claimed, plans one delivery per person the tier's
rule names (`routing.py`) and per channel she has (`store.plan`, idempotent); a claimed or
ended call's pending deliveries are cancelled. Due deliveries go to a small thread pool (a
hanging receiver holds one worker until its timeout); each attempt is stored and reported on
the room's `page/{name}` (not retained; the logger keeps it, the board shows it on the call and
in the room's timeline), and a failure is retried with exponential backoff until `max_attempts`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.ops.metrics import Health, NotifierMetrics
from broker.ops.sdnotify import Notifier as SdNotifier
from contract import sitetime, topics
from contract.mqtt import BrokerEndpoint
from contract.staff import CallReceipt, DeliveryReport

from . import channels
from .config import NotifierConfig
from .routing import Roster, recipients
from .store import Delivery, DeliveryStore

log = logging.getLogger("roomctl.notifier")
WORKERS = 4
SOUNDING = ("placed", "escalated")


class Notifier:
    def __init__(
        self,
        cfg: NotifierConfig,
        endpoint: BrokerEndpoint,
        site: str,
        clock: Callable[[], float] = time.time,
    ):
        self.cfg, self.site, self.clock = cfg, site, clock
        self.tz = sitetime.site_zone(cfg.timezone)  # checked when the file was read
        self.secret = cfg.webhook_secret()
        self.state = SiteState(site)
        self.store = DeliveryStore(cfg.state_db)
        self.feed = BoardFeed(
            endpoint, self.state, listener=self._changed,
            client_id=f"notifier-{site}-{cfg.name}", sender=cfg.name,
        )  # fmt: skip
        self.wake = threading.Event()
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="notify")
        self.ready = threading.Event()  # the retained state seen once (tests, logs)
        # roomctl_notifications_sent_total / _failed_total{site,priority} (docs/OPERATIONS.md)
        self.metrics = NotifierMetrics(site)
        self.health = Health({"broker": self._broker_check})

    def _broker_check(self) -> str | None:
        return None if self.feed.connected.is_set() else "not connected to the broker"

    # paho's thread: mark and wake, nothing more
    def _changed(self, room: str | None) -> None:
        if room is not None:
            with self._lock:
                self._dirty.add(room)
        self.wake.set()

    def roster(self) -> Roster:
        """Who is on shift (the file) and who has which room: the board's retained
        assignments when it has published them (the charge nurse's), else the file's."""
        board = self.state.assignments.get(self.cfg.assignments_from)
        return Roster(
            on_shift=[s.name for s in self.cfg.staff if s.on_shift],
            charge_nurse=self.cfg.charge_nurse,
            assignments=dict(board.rooms) if board is not None else dict(self.cfg.assignments),
        )

    def _channels(self, name: str) -> list[str]:
        staff = next((s for s in self.cfg.staff if s.name == name), None)
        out = []
        if self.cfg.webhook is not None:
            out.append("webhook")
        if self.cfg.ntfy is not None and staff is not None and staff.ntfy_topic:
            out.append("ntfy")
        return out

    def plan_room(self, room: str) -> int:
        """Plan the deliveries the room's calls need now; how many are new."""
        now = self.clock()
        view = self.state.view(room, now)
        if view is None:
            return 0
        roster = self.roster()
        new = 0
        self.store.cancel_ended(room, {c["call_id"] for c in view["calls"]})
        for c in view["calls"]:
            if c["status"] not in SOUNDING:
                self.store.cancel_call(c["call_id"])
                continue
            emergency = c["type"] == "emergency" or c["priority"] == "emergency"
            page = {
                "site": self.site, "room": room, "call_id": c["call_id"], "type": c["type"],
                "what": c["what"], "level": c["level"], "tier": c["tier"],
                "priority": c["priority"],
                "emergency": emergency, "placed_at": c["placed_at"],
                "placed_local": sitetime.hm(c["placed_at"], self.tz) if c["placed_at"] else None,
            }  # fmt: skip
            for who in recipients(room, c["tier"], emergency, roster):
                for channel in self._channels(who):
                    key = f"{c['call_id']}|{c['tier']}|{who}|{channel}"
                    body = json.dumps({**page, "to": who})
                    d = Delivery(key, room, c["call_id"], c["tier"], who, channel, body, 0)
                    new += self.store.plan(d, now)
        return new

    def _request(self, d: Delivery) -> channels.Request:
        page: dict[str, Any] = json.loads(d.body)
        if d.channel == "webhook":
            assert self.cfg.webhook is not None
            return channels.webhook_request(
                self.cfg.webhook.url, self.secret, page, d.key, self.clock()
            )
        assert self.cfg.ntfy is not None
        staff = next(s for s in self.cfg.staff if s.name == d.recipient)
        return channels.ntfy_request(self.cfg.ntfy.url, str(staff.ntfy_topic), page, d.key)

    def _attempt(self, d: Delivery) -> None:
        try:
            try:
                ok, detail = channels.send(self._request(d), self.cfg.timing.timeout_s)
            except Exception as exc:  # a bug or bad data must not kill the worker
                ok, detail = False, f"not sent: {exc}"
            t = self.cfg.timing
            n = d.attempts + 1
            now = self.clock()
            retry = None
            if not ok and n < t.max_attempts:
                retry = now + min(t.backoff_max_s, t.backoff_s * 2 ** (n - 1))
            status = self.store.record(d, ok, detail, now, retry)
            priority = str(json.loads(d.body).get("priority", "normal"))
            if ok:
                self.metrics.delivered(priority)
            else:  # every failed attempt (a receiver down shows at once, not after the last)
                self.metrics.failure(priority)
            log.info("page %s attempt %d: %s (%s)", d.key, n, detail, status)
            self._report(d, n, ok, detail, status, now)
            if ok:
                self._receipt(d, now)
        finally:
            with self._lock:
                self._inflight.discard(d.key)
            self.wake.set()

    def _report(self, d: Delivery, n: int, ok: bool, detail: str, status: str, now: float) -> None:
        report = DeliveryReport(
            room=d.room, call_id=d.call_id, tier=d.tier, recipient=d.recipient,
            channel=d.channel, attempt=n, ok=ok, detail=detail[:500], status=status,
            at=datetime.fromtimestamp(now, UTC),
        )  # fmt: skip
        try:
            self.feed.client.publish(
                topics.page(self.site, d.room, self.cfg.name),
                report.model_dump_json(),
                qos=1,
            )
        except Exception:  # the report is for people; the store has the record
            log.exception("delivery report not published")

    def _receipt(self, d: Delivery, now: float) -> None:
        """The call reached a phone: the room stops waiting for proof (issue 15)."""
        receipt = CallReceipt(call_id=d.call_id, by=d.recipient, via="phone", where=d.channel,
                              issued_at=datetime.fromtimestamp(now, UTC))  # fmt: skip
        try:
            self.feed.client.publish(
                topics.receipt(self.site, d.room, self.cfg.name), receipt.model_dump_json(), qos=1
            )
        except Exception:
            log.exception("receipt not published")

    def dispatch(self) -> int:
        with self._lock:
            busy = set(self._inflight)
        due = self.store.due(self.clock(), busy, limit=WORKERS * 4)
        for d in due:
            with self._lock:
                self._inflight.add(d.key)
            self._pool.submit(self._attempt, d)
        return len(due)

    def run(self, stop: threading.Event, systemd: SdNotifier | None = None) -> None:
        """Until `stop`: plan and dispatch pages. Under systemd (`Type=notify`): READY once
        subscribed, WATCHDOG every half interval while this loop turns (a stuck loop stops
        the pings and systemd restarts the notifier), STOPPING on the way out."""
        systemd = systemd or SdNotifier()
        pinged = float("-inf")
        self.feed.start()
        try:
            while not stop.is_set():
                interval = systemd.watchdog_interval
                if interval and self.ready.is_set() and time.monotonic() - pinged >= interval / 2:
                    pinged = time.monotonic()
                    systemd.notify("WATCHDOG=1")
                with self._lock:
                    rooms, self._dirty = self._dirty, set()
                for room in sorted(rooms):
                    try:
                        self.plan_room(room)
                    except Exception:
                        log.exception("planning room %s failed", room)
                if self.feed.subscribed.is_set() and not self.ready.is_set():
                    self.ready.set()
                    log.info("subscribed to site %s: routing calls", self.site)
                    systemd.notify("READY=1\nSTATUS=routing calls")
                self.dispatch()
                nxt = self.store.next_due()
                wait = 1.0 if nxt is None else max(0.05, min(1.0, nxt - self.clock()))
                self.wake.wait(wait)
                self.wake.clear()
        finally:
            systemd.notify("STOPPING=1")
            self.feed.stop()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self.store.close()
            systemd.close()
