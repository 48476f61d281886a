"""The room daemon supervises its bedside monitor: silence, recovery, vitals on the broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from broker.mosquitto.run import Mosquitto, free_port
from contract import topics
from controller.core.lighting import StatusCode, blink_sequence
from tests.support.mqtt import Recorder, wait_until
from tests.support.room_process import ROOM, SITE, RunningRoom, is_event, room_config


def test_silent_monitor_is_reported_then_vitals_flow(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet: the monitor bridge is "unplugged"
    config = room_config(
        mosquitto,
        tmp_path / "room",
        monitor={
            "protocol": "masimo",
            "transport": "tcp-client",
            "address": f"127.0.0.1:{port}",
            "silence_s": 0.5,
        },
    )
    room = RunningRoom(config)
    sim: subprocess.Popen[bytes] | None = None
    try:
        with Recorder(mosquitto.url, [topics.room_prefix(SITE, ROOM) + "/#"]) as rec:
            room.thread.start()
            lost = rec.wait_for(is_event("monitor_link_lost"), 20).json()
            assert "no reading" in lost["reason"]
            health = rec.wait_for(
                lambda m: m.topic.endswith("/health") and m.json()["monitor"]["status"] == "silent"
            ).json()
            assert health["status_code"] == StatusCode.MONITOR_SILENT
            wait_until(
                lambda: (
                    room.daemon.hardware.status.sequence
                    == blink_sequence(StatusCode.MONITOR_SILENT)
                ),
                5,
                "status LED shows the monitor code",
            )
            # an idle room: the corridor dome stays dark (the status LED is the cue)
            assert room.daemon.hardware.dome.pattern[0] == "off"
            sim = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller.cli",
                    "monitor",
                    "simulate",
                    "--protocol",
                    "masimo",
                    "--tcp",
                    f"127.0.0.1:{port}",
                    "--speed",
                    "30",
                    "--seed",
                    "3",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            vitals = rec.wait_for(lambda m: m.topic.endswith("/vitals"), 30).json()
            assert vitals["protocol"] == "masimo" and vitals["seq"] > health["seq"]
            assert vitals["spo2"] is None or 50 <= vitals["spo2"] <= 100
            rec.wait_for(is_event("monitor_link_restored"), 10)
            rec.wait_for(
                lambda m: (
                    m.topic.endswith("/health")
                    and m.json()["monitor"]["status"] == "ok"
                    and m.json()["monitor"]["frames_accepted"] > 0
                )
            )
            wait_until(lambda: room.daemon.hardware.dome.pattern[0] == "off", 5, "dome off again")
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(10)
            assert sim.stdout is not None
            sim.stdout.close()
        room.daemon.stop()
        room.thread.join(15)
