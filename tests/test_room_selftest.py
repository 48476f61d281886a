"""`roomctl room selftest` (issue 20): a commissioning run against a real Mosquitto and a
simulated monitor, its failures named, and the state-folder lock it shares with `room run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto, free_port
from controller.cli import main
from controller.room_hardware import RoomHardware
from controller.state_lock import StateLock, StateLocked, state_lock
from firmware_py import room_io
from firmware_py.monitors.simulate import SimulatorOptions
from tests.support.reliability_rooms import MonitorSim
from tests.support.room_core import config


def _toml(tmp_path: Path, broker: str, monitor: str | None) -> Path:
    lines = [
        'site = "s1"', 'room = "101"', f'state_dir = "{tmp_path / "state"}"',
        'clock = "synced"', "[broker]", f'url = "{broker}"',
    ]  # fmt: skip
    if monitor:
        lines += ["[monitor]", 'protocol = "masimo"', 'transport = "tcp-client"',
                  f'address = "{monitor}"']  # fmt: skip
    path = tmp_path / "room.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str]]:
    rc = main(["room", "selftest", "--config", str(path), "--simulate", "--look-s", "0", *extra])
    return rc, capsys.readouterr().out.splitlines()


def _status(lines: list[str]) -> dict[str, str]:
    return {line[6:22].strip(): line[:4].strip() for line in lines}


def test_a_good_room_passes_every_check(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = MonitorSim(SimulatorOptions("masimo", speed=5.0))
    address = sim.start()
    try:
        rc, lines = _run(_toml(tmp_path, mosquitto.url, address), capsys)
    finally:
        sim.stop()
    assert rc == 0, lines
    assert _status(lines) == {
        "config": "PASS", "state folder": "PASS", "clock": "PASS", "input call": "PASS",
        "input cancel": "PASS", "input emergency": "PASS", "input presence": "PASS",
        "input assist": "PASS", "input bath": "PASS", "cord loop": "PASS", "dome": "PASS",
        "ambient red": "PASS", "ambient green": "PASS",
        "ambient blue": "PASS", "status LED": "PASS", "broker": "PASS", "monitor": "PASS",
    }  # fmt: skip
    (monitor,) = [line for line in lines if "monitor" in line[:22]]
    assert "spo2" in monitor  # the reading it got


def test_failures_say_what_and_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    rc, lines = _run(_toml(tmp_path, dead, None), capsys, "--broker-wait", "5", "--no-outputs")
    assert rc == 1
    status = _status(lines)
    assert status["broker"] == "FAIL" and status["monitor"] == "WARN"
    (broker,) = [line for line in lines if line[6:22].strip() == "broker"]
    assert dead in broker
    assert "dome" not in status  # --no-outputs


def test_a_running_room_controller_is_not_disturbed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _toml(tmp_path, "mqtt://127.0.0.1:1", None)
    with state_lock(tmp_path / "state"):
        rc, lines = _run(path, capsys)
        assert rc == 1
        (line,) = [x for x in lines if x.startswith("FAIL")]
        assert "room controller (pid" in line and "systemctl stop roomctl-room" in line
        assert not any("dome" in x for x in lines)  # nothing driven under a running room
        assert main(["room", "run", "--config", str(path), "--simulate"]) == 2
        assert "only one may run per state folder" in capsys.readouterr().err
        with pytest.raises(StateLocked):
            StateLock(tmp_path / "state").acquire()
    StateLock(tmp_path / "state").acquire().release()  # free again once released


def test_a_stuck_input_reads_as_pressed() -> None:
    factory = room_io.mock_pin_factory()
    hw = RoomHardware(config(), lambda _b: None, pin_factory=factory)
    try:
        rest = dict.fromkeys(("call", "cancel", "emergency", "presence", "assist", "bath"), False)
        assert hw.inputs() == rest
        assert hw.sim is not None
        hw.sim.press("call")  # held down: a stuck button, or a short on the line
        assert hw.inputs() == {**rest, "call": True}
    finally:
        hw.close()
