"""Call latency: mock-pin press -> dome light on, and press -> `call` message at a subscriber.

The room daemon runs in this process on gpiozero's MockFactory with a pin class that stamps
every output change; a real Mosquitto carries the call to a paho subscriber. Baseline, in
the same run and through the same broker: a bare paho QoS 1 publish -> subscriber round.
Targets: press -> dome p99 < 5 ms; press -> call message p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero.pins.mock import MockFactory, MockPWMPin
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import percentile, row, subscribed_client
from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.mqtt import close_client
from controller.config import build_config
from controller.daemon import RoomDaemon

SITE, ROOM = "bench", "101"


class StampedPin(MockPWMPin):  # type: ignore[misc]
    """A mock pin that records when it turns on and wakes whoever waits for it."""

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        self.on_at = 0.0
        self.lit = threading.Event()

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed and value:
            self.on_at = time.perf_counter()
            self.lit.set()
        return changed


class Subscriber:
    def __init__(self, port: int, topic: str):
        self.got = threading.Event()
        self.at = 0.0
        self.want: Any = None
        self.client = subscribed_client(port, topic, f"bench-sub-{topic[-8:]}", self._on_message)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if self.want is not None and self.want(msg.payload):
            self.at = time.perf_counter()
            self.got.set()

    def expect(self, predicate: Any) -> None:
        self.got.clear()
        self.want = predicate

    def close(self) -> None:
        self.client.disconnect()
        close_client(self.client)


def baseline_round_trips(port: int, n: int) -> list[float]:
    sub = Subscriber(port, "bench/baseline")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    out = []
    try:
        for i in range(n):
            token = str(i).encode()
            sub.expect(lambda p, t=token: p == t)
            t0 = time.perf_counter()
            pub.publish("bench/baseline", token, qos=1)
            if not sub.got.wait(5):
                raise RuntimeError("baseline message lost")
            out.append(sub.at - t0)
    finally:
        pub.disconnect()
        close_client(pub)
        sub.close()
    return out


def call_latencies(broker: Mosquitto, state_dir: Path, n: int) -> tuple[list[float], list[float]]:
    factory = MockFactory(pin_class=StampedPin)
    config = build_config(
        {
            "site": SITE,
            "room": ROOM,
            "state_dir": str(state_dir),
            "simulate": True,
            "clock": "synced",
            "broker": {"url": broker.url},
        }
    )
    daemon = RoomDaemon(config, pin_factory=factory)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    sub = Subscriber(broker.port, topics.call(SITE, ROOM))
    call_pin, cancel_pin = factory.pin(config.gpio.call_pin), factory.pin(config.gpio.cancel_pin)
    dome: StampedPin = factory.pin(config.gpio.dome_pin)
    to_dome, to_msg = [], []
    try:
        deadline = time.monotonic() + 20
        while not daemon.link.connected:
            if time.monotonic() > deadline:
                raise RuntimeError("room did not connect")
            time.sleep(0.01)
        for _ in range(n):
            dome.lit.clear()
            sub.expect(lambda p: json.loads(p)["status"] == "placed")
            t0 = time.perf_counter()
            call_pin.drive_low()
            if not dome.lit.wait(5) or not sub.got.wait(5):
                raise RuntimeError("press not seen")
            to_dome.append(dome.on_at - t0)
            to_msg.append(sub.at - t0)
            call_pin.drive_high()
            sub.expect(lambda p: json.loads(p)["status"] == "idle")
            cancel_pin.drive_low()
            cancel_pin.drive_high()
            if not sub.got.wait(5):
                raise RuntimeError("cancel not seen")
    finally:
        sub.close()
        daemon.stop()
        thread.join(15)
    return to_dome, to_msg


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 200 if quick else 1000
    with (
        tempfile.TemporaryDirectory(prefix="bench-call-") as tmp,
        Mosquitto(Path(tmp) / "mosquitto") as broker,
    ):
        base = baseline_round_trips(broker.port, n)
        to_dome, to_msg = call_latencies(broker, Path(tmp) / "room", n)
    ms = 1000.0
    b99 = percentile(base, 99) * ms
    return [
        row("call: press -> dome light p50", percentile(to_dome, 50) * ms, "ms", None, "-"),
        row(
            "call: press -> dome light p99",
            percentile(to_dome, 99) * ms,
            "ms",
            b99,
            "< 5 ms",
            note=f"{n} presses; baseline = bare paho QoS1 round p99",
        ),
        row(
            "call: press -> call message p50",
            percentile(to_msg, 50) * ms,
            "ms",
            percentile(base, 50) * ms,
            "-",
        ),
        row(
            "call: press -> call message p99",
            percentile(to_msg, 99) * ms,
            "ms",
            b99,
            "< 20 ms",
            note="includes the outbox fsync",
        ),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    for r in run(ap.parse_args().quick):
        print(json.dumps(r))
