"""Outbox drain: a day of 1 Hz vitals (86,400) buffered with the broker down, then replayed.

The rows are stored with the room's own Outbox and Publisher while no broker runs; then a
Mosquitto starts and the room's MQTT link and pump (the daemon's own loop code) replay them.
Measured until a subscriber has every message, checking order and duplicates. Baseline, in
the same run: a bare paho client publishing the same payloads at QoS 1 with the same
in-flight window to the same broker. Target: drain in under 60 s.
"""

from __future__ import annotations

import argparse
import json
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import row, subscribed_client
from broker.mosquitto.run import Mosquitto, free_port
from contract import topics
from contract.messages import VitalsMessage
from contract.mqtt import BrokerEndpoint, close_client
from controller.core.io_types import Publish
from controller.mqtt_link import MqttLink, PubAck
from controller.outbox import Outbox
from controller.publisher import Publisher

SITE, ROOM = "bench", "101"
WINDOW = 100


class Counter:
    """Subscriber that counts messages, checks strictly increasing seq, and signals the last."""

    def __init__(self, port: int, topic: str, expected: int, seq_of: Any):
        self.expected, self.seq_of = expected, seq_of
        self.count, self.out_of_order, self.last = 0, 0, 0
        self.done = threading.Event()
        self.client = subscribed_client(port, topic, f"bench-count-{port}", self._on_message)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        seq = self.seq_of(msg.payload)
        if seq <= self.last:
            self.out_of_order += 1
        self.last = max(self.last, seq)
        self.count += 1
        if self.count >= self.expected:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        close_client(self.client)


def fill(outbox: Outbox, publisher: Publisher, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        body = {"protocol": "masimo", "spo2": 95 + i % 4, "pulse_rate": 70}
        publisher.enqueue_many([Publish(VitalsMessage, {**body, "quality": [], "alarms": []})])
    return time.perf_counter() - t0


def drain(port: int, outbox: Outbox, publisher: Publisher, n: int, timeout: float) -> float:
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    link = MqttLink(
        BrokerEndpoint.from_url(f"mqtt://127.0.0.1:{port}"),
        "bench-room",
        topics.availability(SITE, ROOM),
        [],
        events.put,
        max_inflight=WINDOW,
    )
    counter = Counter(port, topics.vitals(SITE, ROOM), n, lambda p: json.loads(p)["seq"])
    t0 = time.perf_counter()
    link.start()
    deadline = time.monotonic() + timeout
    try:
        while outbox.depth > 0 or not counter.done.is_set():  # the daemon's loop, reduced
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain incomplete: {counter.count}/{n}")
            link.poll(0.05)  # the link's I/O runs on the owner's thread, as in the daemon
            batch: list[object] = []
            try:
                while len(batch) < 500:
                    batch.append(events.get_nowait())
            except queue.Empty:
                pass
            for item in batch:
                if isinstance(item, PubAck):
                    publisher.on_puback(item.mid, item.ok, item.reason)
            publisher.flush_acks()
            publisher.pump(link)
        elapsed = time.perf_counter() - t0
        if counter.out_of_order:
            raise RuntimeError(f"{counter.out_of_order} messages out of order")
        if counter.count != n:
            raise RuntimeError(f"{counter.count} messages for {n}")
        return elapsed
    finally:
        link.stop()
        counter.close()


def baseline(port: int, payloads: list[bytes], timeout: float) -> float:
    """A bare paho client, same payloads, same window of unacknowledged messages.

    The window matters: paho walks its whole outgoing queue on every PUBACK, so handing it
    86,400 messages at once is quadratic. The room keeps at most `WINDOW` in paho too.
    """
    counter = Counter(port, "bench/raw", len(payloads), lambda p: json.loads(p)["seq"])
    window = threading.Semaphore(WINDOW)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    pub.on_publish = lambda *a: window.release()
    pub.max_inflight_messages_set(WINDOW)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    for p in payloads:
        if not window.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
        pub.publish("bench/raw", p, qos=1)
    ok = counter.done.wait(max(0.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t0
    pub.disconnect()
    close_client(pub)
    counter.close()
    if not ok:
        raise RuntimeError(f"baseline incomplete: {counter.count}/{len(payloads)}")
    return elapsed


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 10_000 if quick else 86_400
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", max_rows=200_000)
        publisher = Publisher(outbox, SITE, ROOM, lambda: True, window=WINDOW)
        fill_s = fill(outbox, publisher, n)
        payloads = [r.payload for r in outbox.pending(0, n)]
        port = free_port()
        with Mosquitto(Path(tmp) / "mosquitto", port=port):
            base_s = baseline(port, payloads, 600)
            drain_s = drain(port, outbox, publisher, n, 600)
        outbox.close()
    return [
        row(
            "outbox: store one vitals row (broker down)",
            fill_s / n * 1000,
            "ms",
            None,
            "-",
            note="fsync per row (synchronous=FULL)",
        ),
        row(
            f"outbox: drain {n} buffered vitals",
            drain_s,
            "s",
            base_s,
            "< 60 s" if n == 86_400 else "< 60 s for 86,400",
            note="baseline = bare paho QoS1, same window, same broker",
        ),
        row(
            "outbox: drain rate",
            n / drain_s,
            "msg/s",
            n / base_s,
            "-",
            ratio=(n / drain_s) / (n / base_s),
        ),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    for r in run(ap.parse_args().quick):
        print(json.dumps(r))
