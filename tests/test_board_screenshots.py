"""A busy clinic on the board, photographed: the overview and a room page.

The pictures go to tmp_path; with `ROOMCTL_SCREENSHOTS=docs` they are also written as
`docs/board-overview.png` and `docs/board-room.png` (how the ones in the repo were made).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from broker.mosquitto.run import Mosquitto
from contract.messages import StateMessage
from contract.timefmt import format_ts
from firmware_py.monitors.session_trace import PRE_CHECK_S, KetamineTrace
from tests.support.board import BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


def _ago(minutes: float) -> str:
    return format_ts(datetime.now(UTC) - timedelta(minutes=minutes))


def _clinic(rec: Recorder) -> None:
    vit = {"spo2": 98, "pulse_rate": 74, "nibp_sys": 122, "nibp_dia": 78, "resp_rate": 14}
    r = FakeRoom(rec, "201")
    r.online()
    r.health()
    r.send("state", StateMessage, True, phase="infusion", since=_ago(12))
    r.vitals(**vit)
    r = FakeRoom(rec, "203")
    r.online()
    r.health()
    r.send("state", StateMessage, True, phase="recovery", since=_ago(31))
    r.call("claimed", call_id="c203", priority="normal", placed_at=_ago(1.5),
           claimed_by="alice", claimed_at=_ago(1))  # fmt: skip
    r.vitals(spo2=97, heart_rate=68, nibp_sys=118, nibp_dia=74, resp_rate=13)
    r = FakeRoom(rec, "204")
    r.online()
    r.health()
    r.send("state", StateMessage, True, phase="pre_check", since=_ago(4))
    r.call("escalated", call_id="c204", priority="normal", placed_at=_ago(3.2),
           escalated_at=_ago(0.2))  # fmt: skip
    r.vitals(spo2=99, pulse_rate=81, resp_rate=15)
    r = FakeRoom(rec, "205")
    r.health()
    r.send("state", StateMessage, True, phase="idle", since=_ago(80))
    rec.publish("clinic/test/room/205/availability", "offline", retain=True)
    r = FakeRoom(rec, "206")
    r.online()
    r.health(monitor={"status": "silent"}, clock_synced=False)
    r.send("state", StateMessage, True, phase="infusion", since=_ago(22))
    r = FakeRoom(rec, "207")
    r.online()
    r.health()
    r.send("state", StateMessage, True, phase="discharge_ready", since=_ago(2), alerts=[
        {"name": "sys_high", "field": "nibp_sys", "severity": "medium", "value": 184,
         "threshold": 180, "since": _ago(1)}])  # fmt: skip
    r.vitals(spo2=98, pulse_rate=77, nibp_sys=184, nibp_dia=96, resp_rate=16)


def _session_room(rec: Recorder) -> None:
    """Room 202: an infusion with the trace's desaturation, and an emergency call now."""
    trace = KetamineTrace(seed=3, desat=True, desat_at_s=PRE_CHECK_S + 1200)
    start = datetime.now(UTC) - timedelta(seconds=PRE_CHECK_S + 1400)
    r = FakeRoom(rec, "202")
    r.online()
    r.health()
    infusion_at = start + timedelta(seconds=PRE_CHECK_S)
    r.event("phase_changed", ts=format_ts(infusion_at), phase="infusion", from_phase="pre_check",
            by="alice", session_id="202-demo")  # fmt: skip
    for t in range(int(PRE_CHECK_S), int(PRE_CHECK_S + 1400), 10):
        p = trace.at(t)
        nibp = t % 300 < 10
        r.vitals(ts=format_ts(start + timedelta(seconds=t)), spo2=round(p.spo2),
                 pulse_rate=round(p.pulse_rate), resp_rate=round(p.resp_rate),
                 nibp_sys=round(p.nibp_sys) if nibp else None,
                 nibp_dia=round(p.nibp_dia) if nibp else None)  # fmt: skip
    raised = start + timedelta(seconds=PRE_CHECK_S + 1215)
    r.event("alert_raised", ts=format_ts(raised), detail={"name": "spo2_low", "value": 90})
    r.send("state", StateMessage, True, phase="infusion", since=format_ts(infusion_at),
           session_id="202-demo", planned_end=format_ts(infusion_at + timedelta(minutes=40)),
           alerts=[{"name": "spo2_low", "field": "spo2", "severity": "high", "value": 90,
                    "threshold": 92, "since": format_ts(raised)}])  # fmt: skip
    r.call("placed", call_id="c202", priority="emergency", placed_at=_ago(0.4))
    r.event("call_placed", call_id="c202", priority="emergency")


def test_screenshots_of_a_busy_clinic(
    mosquitto: Mosquitto, board: BoardServer, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    try:
        with Recorder(mosquitto.url, ["clinic/test/#"]) as rec:
            _clinic(rec)
            _session_room(rec)
        login(page, board.url, "alice")
        expect(page.locator(".tile")).to_have_count(7, timeout=WAIT_MS)
        expect(page.locator("#room-202 .call")).to_contain_text("EMERGENCY", timeout=WAIT_MS)
        expect(page.locator("#room-205")).to_have_class("tile offline")
        expect(page.locator("#room-203 .claimed")).to_have_text("✓ responding: alice")
        expect(page.locator("#room-206 .vitals")).to_have_class("vitals stale")
        overview = tmp_path / "board-overview.png"
        page.screenshot(path=str(overview), full_page=True, animations="disabled")

        page.goto(board.url + "/rooms/202")
        expect(page.locator("#charts canvas")).to_have_count(4, timeout=WAIT_MS)
        expect(page.locator("#timeline")).to_contain_text("alert raised")
        room = tmp_path / "board-room.png"
        page.screenshot(path=str(room), full_page=True, animations="disabled")
        for png in (overview, room):
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        out = os.environ.get("ROOMCTL_SCREENSHOTS")
        if out:
            for png in (overview, room):
                shutil.copy(png, Path(out) / png.name)
    finally:
        context.close()
