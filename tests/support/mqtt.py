"""Test helpers: a real paho subscriber that records messages and waits on conditions."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract.mqtt import BrokerEndpoint, close_client, make_client
from contract.timefmt import format_ts, utcnow
from tests.support.polling import poll


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """Subscribes to filters and records every message; `wait_for` blocks on a Condition."""

    def __init__(
        self,
        url: str,
        filters: list[str],
        client_id: str | None = None,
        endpoint: BrokerEndpoint | None = None,
    ):
        """Plain `url`, or a TLS `endpoint` (CA + client certificate) when given."""
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 1883
        self.filters = filters
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        cid = client_id or f"test-{uuid.uuid4().hex[:8]}"
        if endpoint is not None:
            self.host, self.port = endpoint.host, endpoint.port
            self.client = make_client(endpoint, cid)
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5
            )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if not rc.is_failure:
            client.subscribe([(f, 1) for f in self.filters])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> Recorder:
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError("subscription not acknowledged")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 10.0, since: int = 0
    ) -> Received:
        """The first message (from index `since` on) matching predicate, waiting up to timeout."""
        with self._cond:
            found: list[Received] = []

            def check() -> bool:
                for m in self.messages[since:]:
                    if predicate(m):
                        found.append(m)
                        return True
                return False

            if not self._cond.wait_for(check, timeout):
                raise TimeoutError(
                    f"no matching message in {timeout}s; got {len(self.messages)} others"
                )
            return found[0]

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if predicate(m)]

    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        info = self.client.publish(topic, data, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def topic_is(topic: str) -> Callable[[Received], bool]:
    return lambda m: m.topic == topic


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll a condition with a deadline (for state that has no event to wait on): `poll`."""
    poll(predicate, timeout, what, interval=0.005)


def retained(url: str, topic: str, timeout: float = 10.0) -> Received:
    """The retained message on a topic, as a newly connected subscriber sees it."""
    with Recorder(url, [topic]) as rec:
        return rec.wait_for(lambda m: m.topic == topic and m.retain, timeout)


def staff_command(**fields: Any) -> dict[str, Any]:
    """A staff command body as the board sends it: issued now (`issued_at`)."""
    return {"issued_at": format_ts(utcnow()), **fields}
