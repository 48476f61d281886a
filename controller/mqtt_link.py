"""The room's MQTT link: a thin paho 2.x adapter.

Callbacks run on paho's network thread; they only convert to the room core's event types
(`LinkUp`, `LinkDown`, `MessageReceived`) or a `PubAck` for the outbox, and post them to the
daemon's queue (`post`; PUBACKs to `post_ack` if given), which never blocks (the daemon's
queue is unbounded but fed at a bounded rate: one PUBACK per message we handed to paho,
inbound commands limited by the broker's per-client queue). Everything else happens on the
daemon thread.

Session: MQTT 5, `clean_start=False` with a session expiry, so the broker keeps the room's
`cmd/#` subscription and queued commands across reconnects. Will: `availability` =
`offline`, retained. paho keeps unacknowledged QoS 1 messages and resends them itself on
reconnect; the outbox keeps them across process restarts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract.mqtt import BrokerEndpoint, close_client, connect_properties, make_client
from controller.core.io_types import LinkDown, LinkUp, MessageReceived

log = logging.getLogger(__name__)


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
    ):
        self.endpoint = endpoint
        self.will_topic = will_topic
        self.subscriptions = subscriptions
        # subscribed without retain-as-published: a retained message the broker hands over
        # at subscribe time has retain set, a message published now does not
        self.live_subscriptions = live_subscriptions or []
        self._post = post
        self._post_ack = post_ack or post  # PUBACKs may take their own road (see the daemon)
        self._keepalive = keepalive_s
        self._session_expiry = session_expiry_s
        self.connected = False
        # The broker's Maximum Packet Size from its last CONNACK (None: it set none). Written on
        # paho's thread, read by the publisher's pump: an int swap, no lock needed.
        self.broker_max_packet: int | None = None
        self.ready = False  # True from the first CONNACK on: the broker's limit is known
        # the network thread sleeps up to a sixth of the keepalive with no traffic (paho: 1 s)
        self.client = make_client(endpoint, client_id, idle_wake_s=max(1.0, keepalive_s / 6))
        self.client.will_set(will_topic, b"offline", qos=1, retain=True)
        self.client.reconnect_delay_set(
            max(1, round(reconnect_min_s)), max(1, round(reconnect_max_s))
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)  # bounded by the daemon's window instead
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # -- paho callbacks (network thread): convert and post, nothing more --------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("broker refused the connection: %s", rc)
            self._post(LinkDown(f"refused: {rc}"))
            return
        self.connected = True
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
        self._post_ack(PubAck(mid, not rc.is_failure, str(rc)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(MessageReceived(msg.topic, bytes(msg.payload), bool(msg.retain)))

    # -- daemon side -----------------------------------------------------------------

    def start(self) -> None:
        props = connect_properties(self._session_expiry)
        self.client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            keepalive=self._keepalive,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Hand a message to paho (sent now, or on reconnect); return its mid."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.mid)

    def stop(self, timeout: float = 5.0) -> None:
        """Clean shutdown: say offline (the Will is not sent on a clean disconnect)."""
        if self.connected:
            info = self.client.publish(self.will_topic, b"offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self.client.disconnect()
        close_client(self.client)
