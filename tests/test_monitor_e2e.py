"""End to end: a simulated monitor (a real `roomctl monitor simulate` process on a pty or
socket) drives the real room daemon (`roomctl room run --simulate`), and `vitals` arrive
on a real Mosquitto. One test per transport: serial (pty), TCP bridge, MLLP listener."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto, free_port
from contract import topics
from contract.messages import HealthMessage, VitalsMessage
from tests.support.mqtt import Received, Recorder
from tests.support.room_process import start_room, stop_room

SITE = "e2e"
WAIT = 20.0
ROOMCTL = [sys.executable, "-m", "controller.cli"]

pytestmark = pytest.mark.broker


class Simulator:
    """`roomctl monitor simulate ...` as a child process; its first stdout line is read."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*ROOMCTL, "monitor", "simulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stats: dict[str, int] | None = None

    def first_line(self) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(WAIT), "the simulator printed nothing"
        return self.proc.stdout.readline().decode().strip()

    def stop(self) -> dict[str, int]:
        """SIGTERM, wait, close the pipes (always); the stats line it printed on stderr."""
        if self.stats is not None:
            return self.stats
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                _, err = self.proc.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate(timeout=WAIT)
        finally:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        assert self.proc.returncode == 0, err.decode()
        self.stats = json.loads(err.decode().strip().splitlines()[-1])
        return self.stats


def stop_both(sim: Simulator, room: subprocess.Popen[bytes] | None) -> dict[str, int]:
    """Stop the room (if started) and the simulator, both always; then check exit codes."""
    room_code = 0
    try:
        if room is not None:
            room_code = stop_room(room)
    finally:
        stats = sim.stop()
    assert room_code == 0
    return stats


@pytest.fixture
def recorder(shared_mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(shared_mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        yield rec


def vitals_from(rec: Recorder, room: str, count: int) -> list[VitalsMessage]:
    topic = topics.room_topic(SITE, room, "vitals")

    def is_vitals(m: Received) -> bool:
        return m.topic == topic

    # the recorder's condition is re-entrant: count matching messages on every arrival
    rec.wait_for(lambda _m: len(rec.matching(is_vitals)) >= count, WAIT)
    return [VitalsMessage.model_validate_json(m.payload) for m in rec.matching(is_vitals)]


def monitor_health(rec: Recorder, room: str) -> HealthMessage:
    topic = topics.room_topic(SITE, room, "health")

    def ok(m: Received) -> bool:
        return m.topic == topic and json.loads(m.payload)["monitor"]["status"] == "ok"

    return HealthMessage.model_validate_json(rec.wait_for(ok, WAIT).payload)


def run_room(
    broker: Mosquitto, tmp_path: Path, room: str, *monitor: str
) -> subprocess.Popen[bytes]:
    state = tmp_path / f"state-{room}"
    state.mkdir()
    return start_room(broker.url, state, SITE, room, *monitor)


def test_masimo_on_a_pty_to_vitals(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    link = tmp_path / "usb-Masimo_Rad-8_SN56661-if00-port0"
    sim = Simulator("--protocol", "masimo", "--pty", "--pty-link", str(link),
                    "--speed", "60", "--desat", "--seed", "3")
    room = None
    try:
        assert sim.first_line().startswith("/dev/")
        room = run_room(shared_mosquitto, tmp_path, "m1", "--monitor-protocol", "masimo",
                        "--monitor-transport", "serial", "--monitor-address", str(link))
        vitals = vitals_from(recorder, "m1", 3)
        assert all(v.protocol == "masimo" and v.spo2 is not None for v in vitals)
        assert all(v.pulse_rate is not None and 40 < v.pulse_rate < 160 for v in vitals)
        assert all(v.exc_raw == "000800" for v in vitals)
        assert [v.seq for v in vitals] == sorted(v.seq for v in vitals)
        health = monitor_health(recorder, "m1")
        assert health.monitor.protocol == "masimo" and health.monitor.transport == "serial"
    finally:
        stats = stop_both(sim, room)
    assert stats["sent"] >= 3


def test_nonin_through_a_tcp_bridge_to_vitals(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    sim = Simulator(
        "--protocol", "nonin-df7", "--tcp", "127.0.0.1:0", "--speed", "30", "--seed", "8"
    )
    room = None
    try:
        address = sim.first_line()
        room = run_room(shared_mosquitto, tmp_path, "n1", "--monitor-protocol", "nonin-df7",
                        "--monitor-transport", "tcp-client", "--monitor-address", address)
        vitals = vitals_from(recorder, "n1", 4)
        assert all(v.protocol == "nonin-df7" and v.spo2 is not None for v in vitals)
        assert all(v.heart_rate is None and v.nibp_sys is None for v in vitals)
    finally:
        stats = stop_both(sim, room)
    assert stats["clients"] >= 1


def test_hl7_monitor_pushes_to_the_room_mllp_listener(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    port = free_port()
    room = run_room(shared_mosquitto, tmp_path, "h1", "--monitor-protocol", "hl7",
                    "--monitor-transport", "mllp-listen", "--monitor-address", f"127.0.0.1:{port}")
    sim = Simulator("--protocol", "hl7", "--tcp", f"127.0.0.1:{port}", "--speed", "120",
                    "--seed", "5")
    try:
        assert sim.first_line() == f"127.0.0.1:{port}"
        vitals = vitals_from(recorder, "h1", 3)
        for v in vitals:
            assert v.protocol == "hl7"
            assert None not in (v.spo2, v.heart_rate, v.nibp_sys, v.nibp_dia, v.resp_rate,
                                v.etco2, v.temp_c)
        assert monitor_health(recorder, "h1").monitor.transport == "mllp-listen"
    finally:
        stats = stop_both(sim, room)
    assert stats["acked_aa"] >= 3 and stats["acked_other"] == 0


def is_event(room: str, kind: str) -> Callable[[Received], bool]:
    topic = topics.room_topic(SITE, room, "events")
    return lambda m: m.topic == topic and json.loads(m.payload)["kind"] == kind


@pytest.mark.slow
def test_unplugged_serial_monitor_is_reported_lost_then_restored(
    shared_mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    """`--fault unplug` pulls the pty from 10 s to 18 s; the room sees silence (3 s), says
    so, reopens the by-id style symlink when it points at the new pty, and says so."""
    link = tmp_path / "usb-Nonin_Medical_3150-if00"
    sim = Simulator("--protocol", "nonin-df2", "--pty", "--pty-link", str(link),
                    "--fault", "unplug", "--speed", "30", "--seed", "11", "--duration", "60")
    room = None
    try:
        assert sim.first_line().startswith("/dev/")
        room = run_room(shared_mosquitto, tmp_path, "u1", "--monitor-protocol", "nonin-df2",
                        "--monitor-transport", "serial", "--monitor-address", str(link))
        vitals_from(recorder, "u1", 3)
        lost = recorder.wait_for(is_event("u1", "monitor_link_lost"), 30)
        seq_lost = json.loads(lost.payload)["seq"]
        assert "no reading" in json.loads(lost.payload)["reason"]
        restored_event = is_event("u1", "monitor_link_restored")  # also sent at the first reading
        restored = recorder.wait_for(
            lambda m: restored_event(m) and json.loads(m.payload)["seq"] > seq_lost, 40
        )
        seq_restored = json.loads(restored.payload)["seq"]
        topic = topics.room_topic(SITE, "u1", "vitals")
        recorder.wait_for(
            lambda m: m.topic == topic and json.loads(m.payload)["seq"] > seq_restored, WAIT
        )
    finally:
        stats = stop_both(sim, room)
    assert stats["unplugs"] >= 1
