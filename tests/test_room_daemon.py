"""The room daemon against a real Mosquitto: the Must-hold lines of the room issue."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.mosquitto.run import Mosquitto
from contract import topics
from controller.config import RoomConfig, build_config
from controller.daemon import RoomDaemon
from firmware_py import room_io
from tests.mqtt_tools import Recorder, retained, wait_until
from tests.room_process import start_room, stop_room

SITE, ROOM = "test", "101"


def room_config(server: Mosquitto, state_dir: Path, **over: Any) -> RoomConfig:
    raw: dict[str, Any] = {
        "site": SITE,
        "room": ROOM,
        "state_dir": str(state_dir),
        "simulate": True,
        "clock": "synced",
        "broker": {"url": server.url, "reconnect_min_s": 0.5, "reconnect_max_s": 1},
    }
    raw.update(over)
    return build_config(raw)


class RunningRoom:
    def __init__(self, config: RoomConfig):
        self.factory = room_io.mock_pin_factory()
        self.daemon = RoomDaemon(config, pin_factory=self.factory)
        self.config = config
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def press(self, pin: int) -> None:
        self.factory.pin(pin).drive_low()

    def release(self, pin: int) -> None:
        self.factory.pin(pin).drive_high()

    @property
    def dome_lit(self) -> bool:
        return bool(self.daemon.hardware.dome.is_lit)


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


def is_event(kind: str) -> Any:
    return lambda m: m.topic.endswith("/events") and m.json()["kind"] == kind


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
            rec.publish(topics.cmd(SITE, ROOM, "phase"), {"phase": phase, "by": "nurse.kim"})
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


def test_claim_from_board_and_bad_commands_are_refused(
    room: RunningRoom, mosquitto: Mosquitto
) -> None:
    with Recorder(mosquitto.url, [topics.room_prefix(SITE, ROOM) + "/#"]) as rec:
        rec.wait_for(is_event("daemon_started"))
        cmd = topics.cmd(SITE, ROOM, "phase")
        rec.publish(cmd, b"{not json")
        bad = rec.wait_for(is_event("command_refused")).json()
        assert "bad phase command" in bad["reason"]
        rec.publish(cmd, {"phase": "infusion", "by": "nurse.kim"})
        refused = rec.wait_for(is_event("phase_refused")).json()
        assert "idle" in refused["reason"] and "pre_check" in refused["reason"]
        rec.publish(topics.cmd(SITE, ROOM, "claim"), {"call_id": "nope", "by": "nurse.kim"})
        rec.wait_for(lambda m: is_event("command_refused")(m) and m.json()["by"] == "nurse.kim")
        rec.publish(topics.cmd(SITE, ROOM, "scene"), {"scene": "disco", "by": "nurse.kim"})
        rec.wait_for(lambda m: is_event("command_refused")(m) and "disco" in m.json()["reason"])
        # the daemon is still there and acts on a good command
        room.press(room.config.gpio.call_pin)
        placed = rec.wait_for(
            lambda m: m.topic.endswith("/call") and m.json()["status"] == "placed"
        )
        call_id = placed.json()["call_id"]
        rec.publish(topics.cmd(SITE, ROOM, "claim"), {"call_id": call_id, "by": "nurse.kim"})
        claimed = rec.wait_for(
            lambda m: m.topic.endswith("/call") and m.json()["status"] == "claimed"
        )
        assert claimed.json()["claimed_by"] == "nurse.kim"
        rec.publish(cmd, {"phase": "pre_check", "by": "nurse.kim"})
        rec.wait_for(is_event("phase_changed"))
    assert room.thread.is_alive()


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
                rec.publish(topics.cmd(SITE, ROOM, "phase"), {"phase": phase, "by": "nurse.kim"})
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


def test_sim_button_ignored_without_simulate(mosquitto: Mosquitto, tmp_path: Path) -> None:
    cfg = room_config(mosquitto, tmp_path / "room", simulate=False)
    r = RunningRoom(cfg)  # mock pins passed explicitly: not a --simulate room
    r.thread.start()
    try:
        with Recorder(mosquitto.url, [topics.room_prefix(SITE, ROOM) + "/#"]) as rec:
            rec.wait_for(is_event("daemon_started"))
            rec.publish(topics.sim_button(SITE, ROOM), {"button": "call", "action": "press"})
            # a real press still works, and the sim press before it did nothing
            rec.publish(topics.cmd(SITE, ROOM, "phase"), {"phase": "pre_check", "by": "x"})
            rec.wait_for(is_event("phase_changed"))
            assert r.daemon.core.call.status.value == "idle"
            assert not any(
                m.topic.endswith("/call") and json.loads(m.payload)["status"] != "idle"
                for m in rec.messages
                if m.topic.endswith("/call")
            )
    finally:
        r.daemon.stop()
        r.thread.join(15)


def test_corrupt_saved_state_starts_clean(mosquitto: Mosquitto, tmp_path: Path) -> None:
    from controller.outbox import Outbox

    state_dir = tmp_path / "room"
    box = Outbox(state_dir / "outbox.sqlite3")
    box.save_state("call", {"status": "ringing", "call_id": 7})
    box.save_state("session", {"phase": "nowhere"})
    box.close()
    r = RunningRoom(room_config(mosquitto, state_dir))
    r.thread.start()
    try:
        with Recorder(mosquitto.url, [topics.call(SITE, ROOM)]) as rec:
            assert rec.wait_for(lambda m: True).json()["status"] == "idle"
        assert r.daemon.core.session.phase.value == "idle"
    finally:
        r.daemon.stop()
        r.thread.join(15)


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
