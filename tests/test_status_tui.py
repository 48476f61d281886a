"""`roomctl status`: the overview in the terminal, against a real Mosquitto."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from broker.board.live import SiteState
from broker.mosquitto.run import Mosquitto
from broker.status.tui import Bell, render_table
from tests.support.board import SITE, FakeRoom
from tests.support.mqtt import Recorder
from tests.support.terminal import LiveOutput

pytestmark = pytest.mark.broker


def test_status_once_prints_every_room(mosquitto: Mosquitto) -> None:
    with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        a = FakeRoom(rec, "301")
        a.online()
        a.state("infusion")
        a.call("claimed", call_id="c1", priority="emergency", claimed_by="alice")
        b = FakeRoom(rec, "302")
        b.state("recovery")
        rec.publish(f"clinic/{SITE}/room/302/availability", "offline", retain=True)
        c = FakeRoom(rec, "303")
        c.online()
        c.health(monitor={"status": "disconnected"})
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", "--broker", mosquitto.url,
         "--site", SITE, "--once"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "220", "TERM": "dumb"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "site test · live" in text
    for room in ("301", "302", "303"):
        assert room in text
    assert "!!! emergency claimed" in text and "claimed by alice" in text
    assert "OFFLINE" in text
    assert "monitor disconnected" in text
    assert "infusion" in text and "recovery" in text


def test_status_refuses_a_bad_broker_url() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", "--broker", "http://x", "--site", SITE,
         "--once"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "mqtt://" in out.stderr


def test_render_table_marks_levels_and_stale_without_colour() -> None:
    state = SiteState(SITE)
    env = {"v": 1, "site": SITE, "room": "304", "ts": "2026-01-31T08:00:00.000Z",
           "epoch": "0000000000000001", "clock_synced": True}  # fmt: skip
    state.apply("304", "call", json.dumps({**env, "seq": 1, "status": "escalated",
                "call_id": "c", "priority": "infusion"}).encode(), 0.0)  # fmt: skip
    state.apply("304", "vitals", json.dumps({**env, "seq": 2, "spo2": 95,
                "protocol": "x"}).encode(), 0.0)  # fmt: skip
    console = Console(record=True, width=200, color_system=None)
    console.print(render_table(SITE, state.views(100.0), 100.0, "live"))
    text = console.export_text()
    assert "!!! infusion escalated" in text
    assert "95 stale" not in text and "stale" in text


def test_room_text_is_shown_plain_and_cannot_steer_the_terminal() -> None:
    state = SiteState(SITE)
    env = {"v": 1, "site": SITE, "room": "305", "ts": "2026-01-31T08:00:00.000Z",
           "epoch": "0000000000000001", "clock_synced": True}  # fmt: skip
    evil = "[/]\x1b]0;pwned\x07\x1b[2J[bold]x"
    call = {**env, "seq": 1, "status": "claimed", "call_id": "c", "priority": "normal",
            "claimed_by": evil}  # fmt: skip
    assert state.apply("305", "call", json.dumps(call).encode(), 0.0) is not None
    health = {**env, "seq": 2, "monitor": {"status": "ok"}, "buttons": "ok", "lights": "ok",
              "outbox": {"depth": 0, "cap": 10}, "status_code": 5, "status_text": evil,
              "uptime_s": 1, "version": "x"}  # fmt: skip
    assert state.apply("305", "health", json.dumps(health).encode(), 0.0) is not None
    console = Console(record=True, width=300, color_system=None)
    console.print(render_table(SITE, state.views(100.0), 100.0, "live"))  # no MarkupError
    text = console.export_text()
    assert "claimed by [/]" in text and "status 5: [/]" in text and "[bold]x" in text
    assert "\x1b" not in text and "\x07" not in text


def test_status_rings_the_bell_for_a_new_call(mosquitto: Mosquitto) -> None:
    live = LiveOutput("status", "--broker", mosquitto.url, "--site", SITE)
    try:
        with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
            room = FakeRoom(rec, "306")
            room.online()
            room.state("recovery")
            live.wait_for("306")
            assert "\x07" not in live.text  # no call yet: no bell
            room.call("placed", call_id="c-306", priority="normal", type="bath")
            live.wait_for("\x07")
            rung = live.text.count("\x07")
            room.call("claimed", call_id="c-306", priority="normal", type="bath",
                      claimed_by="alice")  # fmt: skip
            live.wait_for("claimed by alice")
            assert live.text.count("\x07") == rung  # the same call claimed: no second bell
    finally:
        live.stop()


def test_bell_rings_once_per_new_call_not_per_pass() -> None:
    class Out:
        text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    def view(room: str, *call_ids: str) -> dict[str, object]:
        calls = [{"call_id": c, "type": "normal", "priority": "normal", "status": "placed",
                  "level": "low", "what": "CALL", "tier": 1, "claimed_by": None,
                  "placed_at": "2026-01-31T08:00:00.000Z", "escalated_at": None}
                 for c in call_ids]  # fmt: skip
        return {"room": room, "calls": calls, "alerts": []}

    out = Out()
    bell = Bell(out)
    assert not bell.update([view("1")])
    assert bell.update([view("1", "a")])
    assert not bell.update([view("1", "a")])  # the same call on the next pass
    assert bell.update([view("1", "a"), view("2", "b")])
    assert not bell.update([view("2", "b")])  # a call ended
    assert out.text == "\a\a" and bell.rung == 2
