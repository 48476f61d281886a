"""The board's MQTT link (paho 2.x, MQTT 5): subscribe to the site, feed SiteState, publish
staff commands.

Callbacks only convert: the message goes through `SiteState.apply` (validation + a dict
update under a lock) and the listener is told which room changed; the listener must not
block (the web hub hands it to its event loop with `call_soon_threadsafe`). The board keeps a
clean session: it has no backlog to catch up, the retained topics give it the present.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract import topics
from contract.mqtt import (
    BrokerEndpoint,
    close_client,
    connect_properties,
    expiry_properties,
    make_client,
)
from contract.staff import DEFAULT_COMMAND_MAX_AGE_S, CallReceipt, ShiftAssignments
from contract.topics import COMMANDS

from .live import SiteState

log = logging.getLogger(__name__)

Listener = Callable[[str | None], None]  # room id, or None for a site-wide change


class CommandNotSent(RuntimeError):
    """The broker link is down or the broker did not acknowledge in time."""


class BoardFeed:
    def __init__(
        self,
        endpoint: BrokerEndpoint,
        state: SiteState,
        listener: Listener | None = None,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
        sender: str = "board",
    ):
        self.endpoint = endpoint
        # the staff name the broker knows this client by: commands go to cmd/<name>/<sender>
        self.sender = topics.check_ident("sender", sender)
        self.state = state
        self.site = state.site
        self.listener = listener
        self.clock = clock
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        # the board's shift assignments (room -> nurse), published retained on every connect
        self.assignments: Callable[[], dict[str, str]] | None = None
        self.messages = 0
        self._stopping = False
        self.client = make_client(
            endpoint, client_id or f"board-{self.site}-{uuid.uuid4().hex[:8]}"
        )
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> BoardFeed:
        # connect_properties: the broker never sends the board a packet over 256 KiB (a huge
        # retained message an old broker still holds is dropped, not loaded).
        self.client.connect_async(
            self.endpoint.host, self.endpoint.port, keepalive=30, properties=connect_properties()
        )
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        close_client(self.client)

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    # -- callbacks ----------------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any = None
    ) -> None:
        if rc.is_failure:
            log.warning("broker refused the board: %s", rc)
            return
        self.connected.set()
        # retain-as-published: a retained `vitals`/`events` message published while the board
        # is connected carries its flag too, so SiteState ignores it like a stale one.
        options = SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe(
            [
                (topics.all_rooms_filter(self.site), options),
                (topics.logger_status_filter(self.site), options),
                (topics.all_assignments(self.site), options),
            ]
        )
        if self.assignments is not None:
            try:
                self.publish_assignments(self.assignments(), self.sender, wait=False)
            except Exception:  # a broken database must not stop the feed: the next change
                log.exception("assignments not republished")
        self._tell(None)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping:
            log.warning("board lost the broker (%s); paho reconnects", rc)
        self._tell(None)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages += 1
        logger = topics.parse_logger_status(self.site, msg.topic)
        if logger is not None:
            self.state.set_logger_status(bytes(msg.payload), logger)
            self._tell(None)
            return
        if msg.topic.startswith(topics.all_assignments(self.site)[:-1]):
            sender = msg.topic.rsplit("/", 1)[-1]
            if self.state.set_assignments(sender, bytes(msg.payload)):
                self._tell(None)
            return
        parsed = topics.parse_room_topic(msg.topic)
        if parsed is None or parsed.site != self.site:
            return
        applied = self.state.apply(
            parsed.room, parsed.leaf, bytes(msg.payload), self.clock(), bool(msg.retain)
        )
        if applied is not None:
            self._tell(applied.room)

    def _tell(self, room: str | None) -> None:
        if self.listener is not None:
            try:
                self.listener(room)
            except Exception:  # a listener bug must not kill paho's thread
                log.exception("board listener failed")

    # -- commands -----------------------------------------------------------------------
    def publish_assignments(
        self, rooms: dict[str, str], by: str, timeout: float = 5.0, wait: bool = True
    ) -> str:
        """Publish the shift's assignments, retained, under this board's staff name."""
        payload = ShiftAssignments(by=by, at=datetime.now(UTC), rooms=rooms).model_dump_json()
        if not self.connected.is_set():
            raise CommandNotSent("the board is not connected to the broker")
        info = self.client.publish(
            topics.assignments(self.site, self.sender), payload, qos=1, retain=True
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandNotSent(f"publish failed ({mqtt.error_string(info.rc)})")
        if wait:
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                raise CommandNotSent(str(exc)) from exc
            if not info.is_published():
                raise CommandNotSent(f"the broker did not acknowledge within {timeout:g}s")
        return payload

    def publish_receipt(self, room: str, receipt: CallReceipt, timeout: float = 5.0) -> None:
        """Say that a call of `room` reached a screen (QoS 1, never retained)."""
        if not self.connected.is_set():
            raise CommandNotSent("the board is not connected to the broker")
        info = self.client.publish(
            topics.receipt(self.site, room, self.sender), receipt.model_dump_json(), qos=1
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandNotSent(f"publish failed ({mqtt.error_string(info.rc)})")
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise CommandNotSent(str(exc)) from exc

    def publish_command(
        self, room: str, name: str, body: dict[str, Any], timeout: float = 5.0
    ) -> str:
        """Validate and publish `cmd/{name}` (QoS 1, never retained); wait for PUBACK.

        Returns the JSON sent. Raises ValueError for an invalid command, CommandNotSent when
        the broker does not take it.
        """
        # issued now: the room refuses it once it is older than its max age, and the broker
        # drops it (message expiry) rather than deliver it late to a room that was offline
        model = COMMANDS[name].model_validate({**body, "issued_at": datetime.now(UTC)})
        payload = model.model_dump_json(exclude_none=True)
        if not self.connected.is_set():
            raise CommandNotSent("the board is not connected to the broker")
        info = self.client.publish(
            topics.cmd(self.site, room, name, self.sender),
            payload,
            qos=1,
            retain=False,
            properties=expiry_properties(DEFAULT_COMMAND_MAX_AGE_S),
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandNotSent(f"publish failed ({mqtt.error_string(info.rc)})")
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise CommandNotSent(str(exc)) from exc
        if not info.is_published():
            raise CommandNotSent(f"the broker did not acknowledge within {timeout:g}s")
        return payload
