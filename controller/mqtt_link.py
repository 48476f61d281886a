"""The room's MQTT link: a thin paho 2.x adapter whose network I/O runs on the daemon's thread.

Callbacks only convert to the room core's event types (`LinkUp`, `LinkDown`,
`MessageReceived`) or a `PubAck` for the outbox, and post them (`post`; PUBACKs to `post_ack`
if given), which never blocks (the daemon's queue is unbounded but fed at a bounded rate: one
PUBACK per message we handed to paho, inbound commands limited by the broker's per-client
queue).

Threads (issue 17): paho's own network thread (`loop_start`) is not used. Every packet the
room sends or receives is read and written by the thread that owns the link (the daemon,
through `fileno`/`want_write`/`service` from its own `select`), so a reading costs no
hand-over to another thread: paho's thread used to wake twice per reading (the publish
through its socket pair, then the PUBACK). Connecting (DNS, TCP, TLS handshake, CONNECT) can
block for seconds, so it runs on a small `mqtt-connect` thread that owns the client only
while `owned` is False and hands it over when the socket is up; the owner never touches the
client meanwhile (`connected` is False, so nothing is published). A TLS socket is never used
from two threads at once.

Session: MQTT 5, `clean_start=False` with a session expiry, so the broker keeps the room's
`cmd/#` subscription and queued commands across reconnects. Will: `availability` =
`offline`, retained. paho keeps unacknowledged QoS 1 messages and resends them itself on
reconnect; the outbox keeps them across process restarts.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.backoff import Backoff
from contract.mqtt import BrokerEndpoint, close_client, connect_properties, make_client
from controller.core.io_types import LinkDown, LinkUp, MessageReceived

log = logging.getLogger(__name__)

CONNECT_JOIN_S = 8.0  # paho's connect timeout is 5 s: the connector ends within this


@dataclass(frozen=True)
class PubAck:
    mid: int
    ok: bool
    reason: str


class MqttLink:
    def __init__(
        self,
        endpoint: BrokerEndpoint,
        client_id: str,
        will_topic: str,
        subscriptions: list[str],
        post: Callable[[object], None],
        *,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        session_expiry_s: int = 86400,
        max_inflight: int = 100,
        live_subscriptions: list[str] | None = None,
        post_ack: Callable[[PubAck], None] | None = None,
        wake: Callable[[], None] | None = None,
    ):
        """`wake`, if given, is called (from the connect thread) when the socket is handed over,
        so an owner asleep in `select` starts waiting on it; without it the owner picks the
        socket up at its next `fileno()` (`poll` does, within its timeout)."""
        self.endpoint = endpoint
        self.will_topic = will_topic
        self.subscriptions = subscriptions
        # subscribed without retain-as-published: a retained message the broker hands over
        # at subscribe time has retain set, a message published now does not
        self.live_subscriptions = live_subscriptions or []
        self._post = post
        self._post_ack = post_ack or post  # PUBACKs may take their own road (see the daemon)
        self._wake = wake or (lambda: None)
        self._keepalive = keepalive_s
        self._session_expiry = session_expiry_s
        # the wait before each reconnect; reset by a CONNACK
        self._backoff = Backoff(max(0.05, reconnect_min_s), reconnect_max_s)
        # paho's keepalive housekeeping (PINGREQ, a missing PINGRESP): done at any wake-up
        # once `_misc_every` has passed since `_misc_last`, and the owner wakes for it after
        # `_misc_late` at the latest
        self._misc_every = max(1.0, keepalive_s / 6)
        self._misc_late = max(1.0, keepalive_s / 3)
        self._misc_last = 0.0
        self.connected = False
        # The broker's Maximum Packet Size from its last CONNACK (None: it set none).
        self.broker_max_packet: int | None = None
        self.ready = False  # True from the first CONNACK on: the broker's limit is known
        # True while the owner's thread owns the client (its socket is up); False while the
        # connect thread does. Only the connect thread sets it, only the owner clears it.
        self.owned = False
        self._need_connect = threading.Event()
        self._stopping = threading.Event()
        self._connector: threading.Thread | None = None
        self.client = make_client(endpoint, client_id)
        self.client.will_set(will_topic, b"offline", qos=1, retain=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)  # bounded by the daemon's window instead
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # -- paho callbacks (the owner's thread): convert and post, nothing more ----------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("broker refused the connection: %s", rc)
            self._post(LinkDown(f"refused: {rc}"))
            return
        self.connected = True
        self._backoff.reset()
        self.broker_max_packet = int(getattr(props, "MaximumPacketSize", 0) or 0) or None
        self.ready = True
        client.publish(self.will_topic, b"online", qos=1, retain=True)
        if self.subscriptions:
            # retain-as-published: the room sees a retained command as retained (and refuses it)
            opts = SubscribeOptions(qos=1, retainAsPublished=True)
            client.subscribe([(f, opts) for f in self.subscriptions])
        if self.live_subscriptions:
            live = SubscribeOptions(qos=1, retainAsPublished=False)
            client.subscribe([(f, live) for f in self.live_subscriptions])
        self._post(LinkUp(bool(flags.session_present)))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        was = self.connected
        self.connected = False
        if was:
            self._post(LinkDown(str(rc)))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        failed = rc.is_failure
        self._post_ack(PubAck(mid, not failed, str(rc) if failed else ""))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(MessageReceived(msg.topic, bytes(msg.payload), bool(msg.retain)))

    # -- connecting (the connect thread) -----------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        self.client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=self._keepalive,
            clean_start=False,
            properties=connect_properties(self._session_expiry),
        )
        self._connector = threading.Thread(
            target=self._connect_loop, name="mqtt-connect", daemon=True
        )
        self._need_connect.set()
        self._connector.start()

    def _connect_loop(self) -> None:
        """Connect when asked (at start, then after each loss, backing off) until stopped.
        Blocks on an Event between connections: no wake-ups while the link is up."""
        first = True
        last_error = ""
        while True:
            self._need_connect.wait()
            if self._stopping.is_set():
                return
            if not first and self._stopping.wait(self._backoff.next()):
                return
            first = False
            try:
                rc = self.client.reconnect()  # TCP, TLS, CONNECT; the CONNACK comes later
                error = "" if rc == mqtt.MQTT_ERR_SUCCESS else mqtt.error_string(rc)
            except (OSError, ValueError) as exc:  # refused, unreachable, TLS, timeout
                error = f"{type(exc).__name__}: {exc}"
            if not error and not self._stopping.is_set():
                self._need_connect.clear()
                self._misc_last = time.monotonic()
                self.owned = True  # handed over: from here on only the owner uses the client
                last_error = ""
                self._wake()
                continue
            if error and error != last_error:
                log.info("cannot connect to the broker at %s: %s", self.endpoint.url, error)
                last_error = error

    # -- the owner's thread ------------------------------------------------------------

    def fileno(self) -> Any:
        """The socket to wait on (for reading; also for writing when `want_write()`), or
        None while the link is down or connecting."""
        if not self.owned:
            return None
        sock = self.client.socket()
        if sock is None:  # lost inside a publish (a failed write closes it)
            self._lost()
        return sock

    def want_write(self) -> bool:
        return self.owned and self.client.want_write()

    def timeout(self, wanted: float) -> float:
        """How long the owner may wait: `wanted`, at most until paho's keepalive housekeeping
        is due; 0 while a TLS record holds bytes the socket no longer signals."""
        if not self.owned:
            return wanted
        if self._tls_pending():
            return 0.0
        late = self._misc_last + self._misc_late
        return max(0.0, min(wanted, late - time.monotonic()))

    def _tls_pending(self) -> bool:
        """Bytes a TLS record decrypted that the socket no longer signals as readable."""
        pending = getattr(self.client.socket(), "pending", None)
        return pending is not None and pending() > 0

    def service(self, readable: bool, writable: bool) -> None:
        """Read what came (callbacks post from here), write what waits, keep the session
        alive; on a loss, hand the client back to the connect thread."""
        if not self.owned:
            return
        c = self.client
        rc = mqtt.MQTT_ERR_SUCCESS
        if readable or self._tls_pending():
            rc = c.loop_read()
        if rc == mqtt.MQTT_ERR_SUCCESS and (writable or c.want_write()):
            rc = c.loop_write()
        now = time.monotonic()
        if rc == mqtt.MQTT_ERR_SUCCESS and now >= self._misc_last + self._misc_every:
            self._misc_last = now
            rc = c.loop_misc()
        if rc != mqtt.MQTT_ERR_SUCCESS or c.socket() is None:
            self._lost()

    def _lost(self) -> None:
        self.owned = False
        if self.connected:  # paho closed the socket without telling us (cannot, but be sure)
            self._on_disconnect(self.client, None, None, "connection lost", None)
        if not self._stopping.is_set():
            self._need_connect.set()

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for the link's own traffic and service it (for an owner with
        nothing else to wait on: a bench, the shutdown drain)."""
        sock = self.fileno()
        if sock is None:
            self._stopping.wait(min(timeout, 0.05))  # connecting: look again soon
            return
        wl = [sock] if self.want_write() else []
        r, w, _ = select.select([sock], wl, [], self.timeout(timeout))
        self.service(bool(r), bool(w))

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Hand a message to paho (written now, or on reconnect); return its mid."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.mid)

    def stop(self, timeout: float = 5.0) -> None:
        """Clean shutdown: say offline (the Will is not sent on a clean disconnect)."""
        self._stopping.set()
        self._need_connect.set()
        if self._connector is not None:
            self._connector.join(CONNECT_JOIN_S)
        if self.owned and self.connected:
            info = self.client.publish(self.will_topic, b"offline", qos=1, retain=True)
            deadline = time.monotonic() + timeout
            while self.owned and not info.is_published() and time.monotonic() < deadline:
                self.poll(deadline - time.monotonic())
        if self.owned:
            with contextlib.suppress(OSError):
                self.client.disconnect()  # written at once: no thread runs paho's loop
        self.owned = False
        close_client(self.client)
