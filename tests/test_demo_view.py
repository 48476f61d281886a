"""The demo's live table (issue 20): one line per room at 80 and at 120 columns, the call and
the room never cut away, nothing wrapped."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from contract.mqtt import BrokerEndpoint
from tools.demo.view import ClinicView

ROOMS = [str(200 + n) for n in range(1, 25)]


def _busy_view() -> ClinicView:
    """24 rooms, every one with the longest texts the demo shows (never connected)."""
    view = ClinicView(BrokerEndpoint("127.0.0.1", 1, tls=False), "test", ROOMS, "demo")
    for n, v in enumerate(view.rooms.values()):
        v.availability = "online" if n % 5 else "offline"
        v.phase = "discharge_ready"
        v.since = "2026-12-01T05:00:00.000Z"
        v.call = {"status": "escalated", "priority": "emergency", "claimed_by": "nina-long-name"}
        v.vitals = {"spo2": 88, "pulse_rate": 131, "nibp_sys": 184, "nibp_dia": 112, "resp_rate": 9}
        v.vitals_at = time.monotonic()
        v.alerts = ["spo2_low", "sys_high", "hr_high"]
        v.health = "monitor disconnected, clock not synced"
        v.monitor = "disconnected"
        v.last_event = "monitor_alarm_raised"
    return view


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_table_gives_each_room_one_line_at_80_and_120_columns(width: int) -> None:
    view = _busy_view()
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(view.table(125, "roomctl demo, site 'test'", width))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    for room in ROOMS:
        mine = [line for line in lines if f" {room} " in line]
        assert len(mine) == 1, (room, mine)  # one line, never wrapped onto a second
        assert "emergency" in mine[0] and "88" in mine[0] and "184/112" in mine[0]
        assert (" OFF " in mine[0]) is (ROOMS.index(room) % 5 == 0)
    header = next(line for line in lines if line.lstrip().startswith("room link"))
    assert ("last event" in header) is (width >= 120)  # 80 leaves the extras out
