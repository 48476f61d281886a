"""Run the real room daemon: in this process with mock pins (`RunningRoom`), or as a
subprocess (`roomctl room run --simulate ...`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

from controller.config import RoomConfig, build_config
from controller.daemon import RoomDaemon
from firmware_py import room_io

SITE, ROOM = "test", "101"


class HasUrl(Protocol):
    @property
    def url(self) -> str: ...


def room_config(server: HasUrl, state_dir: Path, **over: Any) -> RoomConfig:
    """A simulated room of site `test` on the given broker, with quick reconnects."""
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
    """The real daemon on a thread of this process, with gpiozero's mock pins."""

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


def is_event(kind: str) -> Any:
    """A Recorder predicate: an `events` message of this kind."""
    return lambda m: m.topic.endswith("/events") and m.json()["kind"] == kind


def start_room(
    broker_url: str,
    state_dir: Path,
    site: str = "test",
    room: str = "101",
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "controller.cli",
        "room",
        "run",
        "--simulate",
        "--site",
        site,
        "--room",
        room,
        "--broker",
        broker_url,
        "--state-dir",
        str(state_dir),
        "--clock",
        "synced",
        *extra,
    ]
    full_env = {**os.environ, **(env or {})}
    with open(state_dir.parent / f"room-{room}.log", "ab") as log:  # the child keeps its own fd
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)


def stop_room(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)
