"""The real room daemon end to end against a real Mosquitto: GPIO, outbox, link, systemd.

Room behaviour (commands, refusals, priorities, escalation, restore, health) is tested on
the pure core in tests/test_room_core.py; these runs prove the I/O loop around it.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.mqtt import Recorder, retained, staff_command, wait_until
from tests.support.room_process import (
    ROOM,
    SITE,
    RunningRoom,
    is_event,
    room_config,
    start_room,
    stop_room,
)


@pytest.fixture
def room(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningRoom]:
    r = RunningRoom(room_config(mosquitto, tmp_path / "room"))
    r.thread.start()
    try:
        yield r
    finally:
        r.daemon.stop()
        r.thread.join(15)
        assert not r.thread.is_alive(), "daemon did not stop"


def test_press_lights_dome_and_publishes_retained_call(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    with Recorder(mosquitto.url, [topics.call(SITE, ROOM)]) as rec:
        rec.wait_for(lambda m: m.json()["status"] == "idle")
        assert not room.dome_lit
        room.press(room.config.gpio.call_pin)
        wait_until(lambda: room.dome_lit, 5, "dome light on")
        placed = rec.wait_for(lambda m: m.json()["status"] == "placed").json()
    assert placed["priority"] == "normal" and placed["call_id"].startswith(ROOM)
    got = retained(mosquitto.url, topics.call(SITE, ROOM)).json()
    assert got["status"] == "placed" and got["call_id"] == placed["call_id"]


def test_call_works_without_broker_and_is_delivered_when_it_returns(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    wait_until(lambda: room.daemon.link.connected, 10, "room connected")
    mosquitto.stop()
    wait_until(lambda: not room.daemon.link.connected, 10, "room noticed the broker is gone")
    room.press(room.config.gpio.call_pin)
    wait_until(lambda: room.dome_lit, 5, "dome light on with no broker")
    assert room.daemon.core.call.status.value == "placed"
    call_id = room.daemon.core.call.call_id
    mosquitto.start()
    with Recorder(mosquitto.url, [topics.call(SITE, ROOM), topics.events(SITE, ROOM)]) as rec:
        rec.wait_for(
            lambda m: (
                m.topic.endswith("/call")
                and m.json()["call_id"] == call_id
                and m.json()["status"] == "placed"
            ),
            20,
        )
    # the call_placed event itself arrived too (it was stored while the broker was down)
    placed = [
        m for m in rec.messages if m.topic.endswith("/events") and m.json()["kind"] == "call_placed"
    ]
    assert placed and placed[-1].json()["call_id"] == call_id


def test_long_press_and_infusion_priority_and_cancel(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    call_pin = room.config.gpio.call_pin
    with Recorder(mosquitto.url, [topics.room_prefix(SITE, ROOM) + "/#"]) as rec:
        rec.wait_for(is_event("daemon_started"))
        for phase in ("pre_check", "infusion"):
            rec.publish(
                topics.cmd(SITE, ROOM, "phase", "board"), staff_command(phase=phase, by="nurse.kim")
            )
            rec.wait_for(lambda m, p=phase: m.topic.endswith("/state") and m.json()["phase"] == p)
        room.press(call_pin)
        rec.wait_for(lambda m: m.topic.endswith("/call") and m.json()["priority"] == "infusion")
        # keep holding: the long press raises it to an emergency
        rec.wait_for(
            lambda m: m.topic.endswith("/call") and m.json()["priority"] == "emergency", 10
        )
        room.release(call_pin)
        assert room.daemon.hardware.dome.is_lit
        room.press(room.config.gpio.cancel_pin)
        room.release(room.config.gpio.cancel_pin)
        cancelled = rec.wait_for(is_event("call_cancelled")).json()
        rec.wait_for(lambda m: m.topic.endswith("/call") and m.json()["status"] == "idle")
    assert cancelled["detail"]["response_s"] >= 0
    wait_until(lambda: not room.dome_lit, 5, "dome off after cancel")


def test_sigkill_keeps_call_and_phase_and_seq_continues(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    state_dir = tmp_path / "room"
    state_dir.mkdir()
    prefix = topics.room_prefix(SITE, ROOM)
    with Recorder(mosquitto.url, [prefix + "/#"]) as rec:
        proc = start_room(mosquitto.url, state_dir, SITE, ROOM)
        try:
            rec.wait_for(lambda m: m.topic.endswith("/availability") and m.payload == b"online", 20)
            for phase in ("pre_check", "infusion"):
                rec.publish(
                    topics.cmd(SITE, ROOM, "phase", "board"),
                    staff_command(phase=phase, by="nurse.kim"),
                )
                rec.wait_for(
                    lambda m, p=phase: m.topic.endswith("/state") and m.json()["phase"] == p
                )
            rec.publish(topics.sim_button(SITE, ROOM), {"button": "call", "action": "press"})
            placed = rec.wait_for(
                lambda m: m.topic.endswith("/call") and m.json()["status"] == "placed"
            )
            call_id = placed.json()["call_id"]
            before = max(
                m.json()["seq"]
                for m in rec.messages
                if m.payload.startswith(b"{")
                and m.topic.startswith(prefix)
                and "/cmd/" not in m.topic
                and "/sim/" not in m.topic
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            rec.wait_for(
                lambda m: m.topic.endswith("/availability") and m.payload == b"offline", 20
            )
            n_before = len(rec.messages)
            proc = start_room(mosquitto.url, state_dir, SITE, ROOM)
            rec.wait_for(
                lambda m: m.topic.endswith("/availability") and m.payload == b"online",
                20,
                since=n_before,
            )
            started = rec.wait_for(
                lambda m: is_event("daemon_started")(m) and m.json()["seq"] > before
            )
            assert started.json()["detail"]["restored"] is True
        finally:
            stop_room(proc)
    call = retained(mosquitto.url, topics.call(SITE, ROOM)).json()
    state = retained(mosquitto.url, topics.state(SITE, ROOM)).json()
    assert (
        call["call_id"] == call_id and call["status"] == "placed" and call["priority"] == "infusion"
    )
    assert state["phase"] == "infusion"
    assert call["seq"] > before and state["seq"] > before
    # a clean stop says offline (the Will is only for crashes)
    assert retained(mosquitto.url, topics.availability(SITE, ROOM)).payload == b"offline"


def test_systemd_notify_ready_and_watchdog(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(20)
    state_dir = tmp_path / "room"
    state_dir.mkdir()
    proc = start_room(
        mosquitto.url,
        state_dir,
        SITE,
        ROOM,
        env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"},
    )
    got: list[str] = []
    try:
        while sum("WATCHDOG=1" in g for g in got) < 3:
            got.append(server.recv(4096).decode())
        assert any(g.startswith("READY=1") for g in got)
        stop_room(proc)
        while not any("STOPPING=1" in g for g in got):
            got.append(server.recv(4096).decode())
    finally:
        stop_room(proc)
        server.close()


def test_no_gpio_without_simulate_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "room",
            "run",
            "--site",
            "s",
            "--room",
            "r",
            "--state-dir",
            str(tmp_path),
            "--broker",
            "mqtt://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"GPIOZERO_PIN_FACTORY": "", "PATH": ""},
    )
    assert proc.returncode == 3, proc.stderr
    assert "--simulate" in proc.stderr and "Traceback" not in proc.stderr
