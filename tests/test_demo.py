"""`roomctl demo --duration` runs a simulated clinic and ends by itself, leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_demo_runs_script_and_stops_everything(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    state = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "demo",
            "--duration",
            "14",
            "--speed",
            "3",
            "--no-table",
            "--state-dir",
            str(state),
            "--summary",
            str(summary_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=120)
    text = out.decode()
    assert proc.returncode == 0, text
    summary = json.loads(summary_path.read_text())
    assert summary["rooms"] == 3
    assert summary["calls"] >= 2, text  # the infusion call and the emergency
    assert summary["events"] > 10
    assert summary["vitals"] > 10, text  # every room has a simulated monitor
    assert "claims the call" in text and "emergency input" in text
    assert _children_of(proc.pid) == []
    # every room stopped cleanly: each room log ends with its stop
    for log in state.glob("room-*.log"):
        assert "stopping: SIGTERM" in log.read_text(), log.read_text()[-2000:]
    assert not (state / "mosquitto" / "mosquitto.pid").exists()
