"""The room's MQTT link runs its network I/O on its owner's thread (issue 17): no paho network
thread, a small connect thread that owns the client only while connecting. Against a real
Mosquitto: connect, publish and PUBACK, an inbound message, a broker restart (the link comes
back by itself, with its session), keepalive on a silent link, and a clean stop that says
offline. The owner here is a loop like the room daemon's: one `select` on its `Inbox` and the
link's socket."""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.mosquitto.run import Mosquitto
from contract.mqtt import BrokerEndpoint
from controller.core.io_types import LinkDown, LinkUp, MessageReceived
from controller.inbox import Inbox
from controller.mqtt_link import MqttLink, PubAck
from tests.support.mqtt import Recorder, topic_is

pytestmark = pytest.mark.broker
WAIT = 10.0
MAX_ROUNDS = 100_000  # bounded loop


class Owner:
    """Runs the link on a thread the way the daemon does; hands what it posts to a queue."""

    def __init__(self, url: str, keepalive_s: int = 30) -> None:
        self.inbox = Inbox()
        self.got: queue.Queue[tuple[str, object]] = queue.Queue()
        self.calls: queue.Queue[Callable[[], object]] = queue.Queue()
        self.results: queue.Queue[object] = queue.Queue()
        self.rounds = 0
        self.link = MqttLink(
            BrokerEndpoint.from_url(url),
            "room-owner-test",
            "t/avail",
            ["t/cmd/#"],
            self.inbox.put,
            keepalive_s=keepalive_s,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            wake=self.inbox.wake,
        )
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name="owner")

    def start(self) -> Owner:
        self.link.start()
        self.thread.start()
        return self

    def _loop(self) -> None:
        for _ in range(MAX_ROUNDS):
            self.rounds += 1
            self.inbox.quiet = False
            sock = self.link.fileno()
            rl: list[Any] = [self.inbox] if sock is None else [self.inbox, sock]
            wl = [sock] if sock is not None and self.link.want_write() else []
            r, w, _ = select.select(rl, wl, [], self.link.timeout(5.0))
            self.inbox.quiet = True
            if self.inbox in r:
                self.inbox.clear_wakes()
            if sock is not None:
                self.link.service(sock in r, bool(w))
            while not self.inbox.empty():
                item = self.inbox.get_nowait()
                if item == "stop":
                    self.link.stop()
                    return
                self.got.put((threading.current_thread().name, item))
            while not self.calls.empty():
                self.results.put(self.calls.get_nowait()())

    def call(self, func: Callable[[], object]) -> object:
        """Run `func` on the owner's thread (paho is only ever used there)."""
        self.calls.put(func)
        self.inbox.wake()
        return self.results.get(timeout=WAIT)

    def expect(self, kind: type) -> Any:
        for _ in range(100):  # bounded: skip what the test is not looking at
            thread, item = self.got.get(timeout=WAIT)
            if isinstance(item, kind):
                assert thread == "owner"
                return item
        raise AssertionError(f"no {kind.__name__}")

    def stop(self) -> None:
        if self.thread.is_alive():
            self.inbox.put("stop")
            self.thread.join(WAIT)
        assert not self.thread.is_alive()
        self.inbox.close()


@pytest.fixture
def staff(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, ["t/#"], client_id="staff") as rec:
        yield rec


def test_the_link_runs_on_its_owners_thread_and_comes_back_after_a_broker_restart(
    mosquitto: Mosquitto, staff: Recorder
) -> None:
    owner = Owner(mosquitto.url).start()
    try:
        assert owner.expect(LinkUp)
        names = {t.name for t in threading.enumerate()}
        assert "paho-mqtt-client-room-owner-test" not in names, names  # (staff's is there)
        assert "mqtt-connect" in names
        staff.wait_for(lambda m: m.topic == "t/avail" and m.payload == b"online")

        mid = owner.call(lambda: owner.link.publish("t/vitals", b"reading", 1, False))
        ack = owner.expect(PubAck)
        if ack.mid != mid:  # the PUBACK of "online" came first
            ack = owner.expect(PubAck)
        assert ack.mid == mid and ack.ok and ack.reason == ""
        staff.wait_for(topic_is("t/vitals"))

        staff.publish("t/cmd/claim", b"claim")
        msg = owner.expect(MessageReceived)
        assert msg.topic == "t/cmd/claim" and msg.payload == b"claim"

        mosquitto.restart()  # same port, same persistence: the session survives
        assert isinstance(owner.expect(LinkDown), LinkDown)
        up = owner.expect(LinkUp)
        assert up.session_present
        assert owner.call(lambda: owner.link.connected) is True
        owner.call(lambda: owner.link.publish("t/vitals", b"after", 1, False))
        assert owner.expect(PubAck).ok
    finally:
        owner.stop()
    # a clean stop says offline (retained), from the owner's thread, before disconnecting
    with Recorder(mosquitto.url, ["t/avail"], client_id="late") as late:
        assert late.wait_for(topic_is("t/avail")).payload == b"offline"


def test_a_silent_link_keeps_its_session_alive_without_busy_waking(
    mosquitto: Mosquitto, staff: Recorder
) -> None:
    """keepalive 3 s: paho's PINGREQ goes out from the owner's loop; the loop wakes only a few
    times a second at most (no traffic, no events), and the link is never dropped."""
    owner = Owner(mosquitto.url, keepalive_s=3).start()
    try:
        owner.expect(LinkUp)
        before = owner.rounds
        stay = threading.Event()
        assert not stay.wait(7.0)  # two keepalive periods of silence, waited on an Event
        while not owner.got.empty():  # the PUBACK of "online" may still be there
            _, item = owner.got.get_nowait()
            assert isinstance(item, PubAck), f"{item} while the link was silent"
        assert owner.call(lambda: owner.link.connected) is True
        assert owner.rounds - before < 20  # 7 s of select: a handful of keepalive wakes
    finally:
        owner.stop()


def test_a_broker_that_is_not_there_is_retried_with_backoff(tmp_path: Any) -> None:
    """The connect thread retries (backing off, logging once per error) and connects as soon
    as the broker is there; the owner never blocks meanwhile."""
    broker = Mosquitto(tmp_path / "late")
    owner = Owner(broker.url).start()
    try:
        assert owner.call(lambda: owner.link.fileno()) is None  # the owner still runs
        broker.start()
        assert owner.expect(LinkUp)
    finally:
        owner.stop()
        broker.stop()
