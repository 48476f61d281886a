"""End to end (issue 18): HL7 dialect fixtures sent over a socket to the real room daemon's
MLLP listener (`roomctl room run --monitor-dialect ...`), one ACK per frame, and the vitals
on a real Mosquitto carrying each value's time and age, the temperature site and the
monitor's alarm content. (That a stale NIBP raises no alert is tested on the core.)"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto, free_port
from contract import topics
from contract.messages import VitalsMessage
from firmware_py.monitors.mllp import MllpDeframer
from tests.support.monitor_fixtures import DATA, load
from tests.support.mqtt import Received, Recorder
from tests.support.room_process import start_room, stop_room

SITE = "dialects"
WAIT = 20.0

pytestmark = pytest.mark.broker


@pytest.fixture
def recorder(shared_mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(shared_mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        yield rec


def connect(port: int) -> socket.socket:
    """Connect to the room's MLLP listener: polled with a deadline (the room has published
    its health by now, so the listener is up or about to be)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        except OSError:
            if time.monotonic() > deadline:
                raise
            pause.wait(0.05)


def send_and_ack(port: int, data: bytes, frames: int) -> list[bytes]:
    """Send `data` in small pieces; collect one ACK per frame."""
    acks: list[bytes] = []
    deframer = MllpDeframer()
    with connect(port) as sock:
        for i in range(0, len(data), 7):  # frames cut by small writes
            sock.sendall(data[i : i + 7])
        while len(acks) < frames:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {len(acks)} ACKs"
            acks.extend(deframer.feed(chunk))
    return acks


def test_nibp_age_and_legacy_alarms_reach_the_broker(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    room = start_room(shared_mosquitto.url, state, SITE, "d1", "--monitor-protocol", "hl7",
                      "--monitor-transport", "mllp-listen",
                      "--monitor-address", f"127.0.0.1:{port}")  # fmt: skip
    topic = topics.room_topic(SITE, "d1", "vitals")
    health = topics.room_topic(SITE, "d1", "health")
    try:
        recorder.wait_for(lambda m: m.topic == health, WAIT)
        nk = load(DATA / "hl7" / "nihon_kohden_two_groups.hl7")
        legacy = load(DATA / "hl7" / "mindray_legacy_t8_session.hl7")
        acks = send_and_ack(port, nk + legacy, 1 + 11)
        assert all(b"MSA|AA|" in a for a in acks)

        def vitals(m: Received) -> bool:
            return m.topic == topic

        recorder.wait_for(lambda _m: len(recorder.matching(vitals)) >= 1 + 8, WAIT)
        got = [json.loads(m.payload) for m in recorder.matching(vitals)]
        for body in got:
            VitalsMessage.model_validate(body)
        first = got[0]
        assert first["nibp_sys"] == 142.0 and first["age_s"]["nibp_sys"] == 1080.0
        assert first["observed_at"]["nibp_sys"] == "2026-11-25T08:26:00"
        legacy_bodies = got[1:]
        assert all("age_s" not in b or b["nibp_sys"] is not None for b in legacy_bodies)
        tech = [b for b in legacy_bodies if "mindray_tech_205" in b["alarms"]]
        assert tech and tech[0]["alarm_details"][0]["kind"] == "technical"
        assert tech[0]["alarm_details"][0]["text"] == "SpO2 Sensor Off"
    finally:
        assert stop_room(room) == 0



def test_simulated_mindray_legacy_monitor_to_vitals(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    """`roomctl monitor simulate --protocol hl7 --dialect mindray-legacy`: one message per
    module each second, the NIBP alone in an aperiodic 503 with its own time; the room
    (auto-detection) reads each; every message gets its AA."""
    port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    room = start_room(shared_mosquitto.url, state, SITE, "d2", "--monitor-protocol", "hl7",
                      "--monitor-transport", "mllp-listen",
                      "--monitor-address", f"127.0.0.1:{port}")  # fmt: skip
    topic = topics.room_topic(SITE, "d2", "vitals")
    command = [sys.executable, "-m", "controller.cli", "monitor", "simulate", "--protocol",
               "hl7", "--dialect", "mindray-legacy", "--tcp", f"127.0.0.1:{port}",
               "--speed", "120", "--seed", "4"]  # fmt: skip
    sim = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def nibp(m: Received) -> bool:
            return m.topic == topic and json.loads(m.payload)["nibp_sys"] is not None

        body = json.loads(recorder.wait_for(nibp, WAIT).payload)
        assert body["observed_at"]["nibp_sys"] and "age_s" in body
        assert body["spo2"] is None and body["heart_rate"] is None  # NIBP comes alone
        spo2 = recorder.wait_for(
            lambda m: m.topic == topic and json.loads(m.payload)["spo2"] is not None, WAIT
        )
        assert json.loads(spo2.payload)["pulse_rate"] is not None
    finally:
        sim.send_signal(signal.SIGTERM)
        _, err = sim.communicate(timeout=WAIT)
        assert stop_room(room) == 0
    stats = json.loads(err.decode().strip().splitlines()[-1])
    assert sim.returncode == 0 and stats["acked_aa"] >= 5 and stats["acked_other"] == 0
