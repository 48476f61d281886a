"""`python -m tools.demo --duration`: the whole clinic, then the summary says nothing was lost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.mark.slow
def test_demo_day_is_logged_exactly_once_and_leaves_nothing_running(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    state = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.demo",
            "--duration",
            "60",
            "--speed",
            "6",
            "--no-table",
            "--state-dir",
            str(state),
            "--summary",
            str(summary_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    out, _ = proc.communicate(timeout=240)
    text = out.decode()
    assert proc.returncode == 0, text
    board_url = next(line for line in text.splitlines() if line.startswith("Board: "))
    s = json.loads(summary_path.read_text())
    assert s["rooms"] == 6
    # every vital published was logged exactly once
    assert s["vitals_published"] > 100, text
    assert s["vitals_logged"] == s["vitals_published"], text
    assert s["lost"] == 0 and s["duplicates"] == 0 and s["quarantined"] == 0, text
    assert s["undelivered_at_stop"] == 0, s["per_room"]
    # every call was recorded: the infusion call, the emergency and the escalated one were
    # claimed by the nurse; the assist too; the second patient call and the bath call were
    # answered by presence in the room; the cord out ended when it was plugged back
    by_type = sorted((c["type"], c["priority"]) for c in s["calls"])
    assert by_type == [
        ("assist", "high"),
        ("bath", "high"),
        ("cord_out", "trouble"),
        ("emergency", "emergency"),
        ("normal", "infusion"),
        ("normal", "normal"),
        ("normal", "normal"),
    ], s["calls"]
    claimed = [c for c in s["calls"] if c["type"] in ("assist", "emergency") or
               c["priority"] == "infusion"]  # fmt: skip
    assert all(c["response_s"] is not None and c["claimed_by"] == "ana" for c in claimed)
    assert all(c["status"] == "cancelled" for c in s["calls"]), s["calls"]
    n = s["nurse_call"]
    assert n["presence"] == 2 and n["answered_by_presence"] == 2, n
    assert (n["assist"], n["bath"], n["cord_out"], n["cord_back"]) == (1, 1, 1, 1), n
    assert n["cleaning"] == 1 and n["ignored_in_cleaning"] == 1, n
    assert n["monitor_alarms"] >= 1, n  # room 101's Masimo: its probe slips off
    # issue 15: the escalation room's screens closed: nobody confirms its call, the room
    # escalates locally, once, until a screen opens again
    assert (n["central_blind"], n["central_reached"]) == (1, 1), n
    assert "nurse call: 2 presence" in text
    assert s["alerts_raised"] >= 1, text  # the hypertensive patient's blood pressure
    assert s["events_logged"] > 50
    for story in ("loses power", "boots again", "cable is pulled", "plugged back", "EMERGENCY"):
        assert story in text
    # nothing left running, the board's port is free again
    assert _children_of(proc.pid) == []
    port = int(board_url.split(":")[3].split("/")[0])
    assert _port_free(port)
    db = Path(s["database"])
    assert db.exists() and db.parent == state
