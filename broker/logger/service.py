"""The central logger: every room message from MQTT into the store, nothing lost, nothing twice.

How this works:
- One paho MQTT 5 client with a stable client id, `clean_start=False` and a session expiry of at
  least a day, so the broker queues everything while the logger is down. It subscribes at QoS 1
  to `clinic/<site>/room/+/#` (optionally `$share/<group>/...` for several loggers).
- `manual_ack=True`: paho would otherwise send PUBACK as soon as `on_message` returns, and a
  message acknowledged but not yet committed would be lost by a SIGKILL. Here `on_message` only
  enqueues; the writer thread commits a batch in one transaction and only then acks each
  message of it. A kill before the commit means no PUBACK, and the broker redelivers on
  reconnect; a kill between commit and ack means a redelivery that the idempotent insert on
  `(site, room, epoch, seq)` ignores.
- The queue is bounded. When it is full, `on_message` blocks the paho network thread instead of
  dropping: the broker stops sending (TCP back-pressure), keeps the messages queued for our
  session, and nothing is lost. In practice it never fills: the CONNECT property
  `ReceiveMaximum` caps un-acked messages in flight to us below the queue size.
- Acks carry the connection generation: after a reconnect, messages of the old connection are
  not acked on the new one (the broker redelivers them; the dedupe absorbs them).
- Once subscribed, the logger publishes its status `online` (retained), with `offline` as Will, on
  `clinic/<site>/logger/status`, or `clinic/<site>/logger/<name>/status` when it is one of
  several (certificate `logger-<name>`): redundant loggers each have their own, and the board
  shows each. Several loggers each keep their own persistent session (their own client id)
  and write the same messages; the store's unique key makes the second copy a no-op
  (docs/SCALE.md). `$share/` is not redundancy: Mosquitto does not hand a dead member's
  unacknowledged messages to another member.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker.logger.config import LoggerConfig
from broker.logger.ingest import QUARANTINE_RAW_CAP, Classified, Rejected, classify
from broker.logger.metrics import LoggerMetrics, logger_health
from broker.logger.quarantine_rate import QuarantineRateLimiter
from broker.logger.store import BatchStats, LogStore, QuarantineLimits, StoreError, open_store
from broker.ops.metrics import OpsServer
from broker.ops.sdnotify import Notifier
from contract import topics
from contract.mqtt import BrokerEndpoint, close_client, connect_properties, make_client
from contract.timefmt import format_ts

log = logging.getLogger("roomctl.logger")


def logger_name(cert: Path | None) -> str | None:
    """The name in a `logger-<name>` client certificate (None for `logger` or no certificate)."""
    if cert is None:
        return None
    from broker.mosquitto.pki import Identity, cert_cn, load_cert

    try:
        ident = Identity.from_cn(cert_cn(load_cert(cert)))
    except (OSError, ValueError):
        return None  # an unreadable certificate fails at connect, with its own message
    return ident.name if ident is not None and ident.kind == "logger" else None


class Inbound(NamedTuple):
    """One received message, as `on_message` enqueues it (no parsing on the paho thread)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: float  # time.time(); formatted by the writer
    retain: bool = False  # as published (the subscription asks for retain-as-published)


_STOP = object()


class Logger:
    """Runs the MQTT client and the writer thread. `start()`, then `stop()`."""

    def __init__(self, cfg: LoggerConfig):
        self.cfg = cfg
        self.endpoint = BrokerEndpoint.from_url(cfg.broker, ca=cfg.ca, cert=cfg.cert, key=cfg.key)
        self.name = cfg.name or logger_name(cfg.cert)
        suffix = f"-{self.name}" if self.name else ""
        self.client_id = cfg.client_id or f"roomctl-logger-{cfg.site}{suffix}"
        self.status_topic = topics.logger_status(cfg.site, self.name)
        self.sites: str | frozenset[str] = cfg.site
        if cfg.also_sites:
            self.sites = frozenset((cfg.site, *cfg.also_sites))
        self.filters = [topics.all_rooms_filter(s) for s in (cfg.site, *cfg.also_sites)]
        if cfg.share_group:
            self.filters = [f"$share/{cfg.share_group}/{f}" for f in self.filters]
        self.filter = self.filters[0]
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_max)
        self.totals = BatchStats()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._cond = threading.Condition()
        self._generation = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self._last_retention = float("-inf")  # the first pass runs at once
        self._quarantine_rate = QuarantineRateLimiter(
            cfg.quarantine_rate_per_room, cfg.quarantine_burst_per_room
        )  # the writer thread's only
        self._ts_second = -1
        self._ts_prefix = ""
        self.db_problem: str | None = None  # the last database write's error, until one succeeds
        self.writer_beat = time.monotonic()  # the writer thread's last sign of life (watchdog)
        self.metrics = LoggerMetrics(
            cfg.site, self.queue, self.connected, self.subscribed, [cfg.cert], cfg.pki_dir
        )
        self.health = logger_health(
            self.connected,
            self.subscribed,
            lambda: self._writer is not None and self._writer.is_alive(),
            lambda: self.db_problem,
        )
        self.client = self._make_client()

    # -- MQTT side (paho thread): convert and enqueue, nothing more ---------------------
    def _make_client(self) -> mqtt.Client:
        client = make_client(self.endpoint, self.client_id)
        client.manual_ack_set(True)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties:
        return connect_properties(self.cfg.session_expiry_s, self.cfg.receive_maximum)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any = None
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the logger: %s", rc)
            return
        with self._lock:
            self._generation += 1
        log.info("connected to %s (session present: %s)", self.endpoint.url, flags.session_present)
        # retain-as-published: the flag says whether the publisher retained the message, so a
        # retained `events`/`vitals`/`cmd` message is seen (and quarantined) as such.
        options = SubscribeOptions(
            qos=1,
            retainAsPublished=True,
            retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
        )
        client.subscribe([(f, options) for f in self.filters])
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any = None
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", rc)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any = None
    ) -> None:
        if any(r.is_failure for r in rcs):
            log.error("subscription to %s refused: %s", ", ".join(self.filters), rcs)
        else:
            self.subscribed.set()
            # `online` only once subscribed: rooms resend their replay window when they see
            # it, and what they resend must find this subscription in place
            client.publish(self.status_topic, "online", qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = repr(msg._topic)
        # `_generation` only changes in on_connect, on this same paho thread: no lock needed.
        item = Inbound(
            topic,
            bytes(msg.payload),
            msg.mid,
            msg.qos,
            self._generation,
            time.time(),
            bool(msg.retain),
        )
        # Blocks when full: back-pressure to the broker, never a drop (see module docstring).
        self.queue.put(item)

    # -- writer thread -----------------------------------------------------------------
    def _writer_loop(self) -> None:
        limits = QuarantineLimits(
            max_rows=self.cfg.quarantine_max_rows_per_room,
            max_bytes=self.cfg.quarantine_max_bytes_per_room,
        )
        store = open_store(self.cfg.db, synchronous=self.cfg.synchronous, quarantine=limits)
        try:
            done = False
            while not done:
                self.writer_beat = time.monotonic()
                try:
                    first = self.queue.get(timeout=0.25)
                except queue.Empty:
                    self._maybe_retention(store)
                    continue
                if first is _STOP:
                    break
                batch: list[Inbound] = [first]
                while len(batch) < self.cfg.batch_max:
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        done = True
                        break
                    batch.append(nxt)
                if not self._commit(store, batch):
                    break
                self._ack(batch)
                self._maybe_retention(store)
        finally:
            store.close()

    def _commit(self, store: LogStore, batch: list[Inbound]) -> bool:
        """Write a batch; on a database error retry (bounded by stop) and never ack a failure."""
        limit = self._quarantine_rate.apply
        items = [
            (
                limit(classify(i.topic, i.payload, self.sites, self.cfg.max_bytes, i.retain)),
                self._ts(i.received_at),
            )
            for i in batch
        ]
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                stats = self._write(store, batch, items)
                break
            except StoreError as exc:
                self.writer_beat = time.monotonic()  # alive, retrying (health says why)
                self.db_problem = str(exc)[:200]
                self.metrics.write_failed()
                log.error("database write failed (%s); retrying the batch", exc)
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)
        self.db_problem = None
        self.metrics.batch_written(
            items, [i.received_at for i in batch], stats, time.perf_counter() - started
        )
        with self._cond:
            self.totals.add(stats)
            self._cond.notify_all()
        if stats.quarantined:
            log.warning("%d message(s) quarantined", stats.quarantined)
        if stats.rate_limited:
            log.warning(
                "%d rejected message(s) over their room's quarantine rate: counted, not stored",
                stats.rate_limited,
            )
        if stats.quarantine_dropped:
            log.warning(
                "%d old quarantine row(s) dropped (a room over its quarantine caps)",
                stats.quarantine_dropped,
            )
        return True

    @staticmethod
    def _write(
        store: LogStore, batch: list[Inbound], items: list[tuple[Classified, str]]
    ) -> BatchStats:
        """Write the batch; if a bug (not a database error) breaks it, write the messages one by
        one and quarantine the ones that still fail, so one message cannot stop the logger."""
        try:
            return store.write_batch(items)
        except StoreError:
            raise
        except Exception:
            log.exception("writing a batch failed; writing its messages one by one")
        stats = BatchStats()
        for inbound, (item, received_at) in zip(batch, items, strict=True):
            try:
                stats.add(store.write_batch([(item, received_at)]))
            except StoreError:
                raise
            except Exception as exc:
                reason = f"logger error: {type(exc).__name__}: {exc}"[:500]
                raw = inbound.payload
                rejected = Rejected(inbound.topic, reason, raw[:QUARANTINE_RAW_CAP], len(raw))
                stats.add(store.write_batch([(rejected, received_at)]))
        return stats

    def _ts(self, at: float) -> str:
        """RFC 3339 with milliseconds; the second is formatted once (this runs per message)."""
        second = int(at)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._ts_prefix}.{int((at - second) * 1000):03d}Z"

    def _ack(self, batch: list[Inbound]) -> None:
        with self._lock:
            generation = self._generation
        for item in batch:
            if item.qos > 0 and item.generation == generation:
                self.client.ack(item.mid, item.qos)

    def _maybe_retention(self, store: LogStore) -> None:
        """Every `retention_interval_s`: one bounded retention pass (the store resumes where the
        last one stopped, so every room and table is reached across passes)."""
        now = time.monotonic()
        if now - self._last_retention < self.cfg.retention_interval_s:
            return
        self._last_retention = now
        at = datetime.now(UTC)
        clinical = format_ts(at - timedelta(days=self.cfg.retention_days))
        quarantine = format_ts(at - timedelta(days=self.cfg.quarantine_retention_days))
        try:
            deleted = store.delete_expired(clinical, quarantine, batch=self.cfg.retention_batch)
        except StoreError as exc:
            self.db_problem = f"retention: {exc}"[:200]
            log.error("retention failed: %s", exc)
            return
        self.db_problem = None
        if any(deleted.values()):
            done = ", ".join(f"{n} {table}" for table, n in deleted.items() if n)
            log.info("retention: deleted %s (before %s; quarantine %s)", done, clinical, quarantine)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Logger:
        open_store(self.cfg.db, synchronous=self.cfg.synchronous).close()  # migrate up front
        self._writer = threading.Thread(target=self._writer_loop, name="logger-writer", daemon=True)
        self._writer.start()
        self.client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()
        return self

    def writer_ok(self, max_age_s: float) -> bool:
        """The writer thread runs and has shown life within `max_age_s` (systemd's watchdog:
        a hung writer gets the logger restarted; a failing database is /healthz's to report)."""
        alive = self._writer is not None and self._writer.is_alive()
        return alive and time.monotonic() - self.writer_beat < max_age_s

    def wait_committed(self, predicate: Any, timeout: float) -> bool:
        """Wait until `predicate(self.totals)` holds (tests, bench)."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self.totals), timeout))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            info.wait_for_publish(timeout=2.0)
        if self._writer is not None:  # the writer acks its last batch while still connected
            # Bounded: a writer that already gave up (a database that stays down) never takes
            # from a full queue again, and an unbounded put would hang the stop for ever.
            with contextlib.suppress(queue.Full):
                self.queue.put(_STOP, timeout=timeout)
            self._writer.join(timeout)
        self.client.disconnect()
        close_client(self.client)


def run(cfg: LoggerConfig) -> int:
    """Run until SIGTERM/SIGINT (the `roomctl logger` command)."""
    logger = Logger(cfg).start()
    ops = None
    if cfg.ops_port is not None:
        ops = OpsServer(logger.metrics.registry, logger.health, cfg.ops_host, cfg.ops_port)
        ops.start()
        log.info("metrics and health on http://%s:%d/metrics, /healthz", cfg.ops_host, ops.port)
    stop = threading.Event()

    def _handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    log.info("logger %s for site %s writing %s", logger.client_id, cfg.site, cfg.db)
    systemd = Notifier()
    systemd.notify("READY=1\nSTATUS=storing")
    watchdog = systemd.watchdog_interval
    tick = min(60.0, watchdog / 2) if watchdog else 60.0
    last_stats = time.monotonic()
    while True:
        if watchdog and logger.writer_ok(watchdog):
            systemd.notify("WATCHDOG=1")
        if time.monotonic() - last_stats >= 60.0:
            last_stats = time.monotonic()
            t = logger.totals
            log.info(
                "stored %d, duplicates %d, quarantined %d, queue %d",
                t.inserted,
                t.duplicates,
                t.quarantined,
                logger.queue.qsize(),
            )
        if stop.wait(tick):
            break
    systemd.notify("STOPPING=1")
    logger.stop()
    systemd.close()
    if ops is not None:
        ops.stop()
    return 0
