"""The room's MQTT client sleeps with no traffic for long stretches (issue 17), so everything it
must do at once has to wake it: a publish from another thread, a message from the broker, a
disconnect. Tested with an idle wake of an hour against a real Mosquitto: had any of these
waited for the idle wake, the bounded waits below would run out."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from broker.mosquitto.run import Mosquitto
from contract.mqtt import BrokerEndpoint, close_client, make_client

pytestmark = pytest.mark.broker
HOUR = 3600.0


def test_traffic_wakes_a_client_that_would_otherwise_sleep_an_hour(mosquitto: Mosquitto) -> None:
    endpoint = BrokerEndpoint.from_url(mosquitto.url)
    client = make_client(endpoint, "quiet-room", idle_wake_s=HOUR)
    connected, got = threading.Event(), threading.Event()
    received: list[bytes] = []

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, p: object = None) -> None:
        c.subscribe("quiet/in", qos=1)
        connected.set()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        got.set()

    client.on_connect, client.on_message = on_connect, on_message
    client.connect_async(endpoint.host, endpoint.port, keepalive=60)
    client.loop_start()
    other = make_client(endpoint, "staff")
    other.connect(endpoint.host, endpoint.port)
    other.loop_start()
    try:
        assert connected.wait(10)
        # a publish from this thread (not paho's) goes out and its PUBACK comes back
        info = client.publish("quiet/out", b"reading", qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        # a message from the broker is delivered while the thread sleeps in select()
        assert other.publish("quiet/in", b"claim", qos=1).rc == mqtt.MQTT_ERR_SUCCESS
        assert got.wait(10) and received == [b"claim"]
        # and a disconnect ends the thread without waiting out the hour
        client.disconnect()
        closing = threading.Thread(target=close_client, args=(client,), daemon=True)
        closing.start()
        closing.join(10)
        assert not closing.is_alive()
    finally:
        other.disconnect()
        close_client(other)
