"""Run the real room daemon as a subprocess (`roomctl room run --simulate ...`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


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
