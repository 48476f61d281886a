"""`roomctl status`: the overview in the terminal, against a real Mosquitto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from broker.board.live import SiteState
from broker.mosquitto.run import Mosquitto
from broker.status.tui import Bell, render_room, render_table
from tests.support.board import SITE, FakeRoom
from tests.support.mqtt import Recorder
from tests.support.terminal import LiveOutput

pytestmark = pytest.mark.broker
NEW_YORK = ZoneInfo("America/New_York")


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


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [(["--timezone", "Mars/Olympus"], {}, "--timezone: 'Mars/Olympus' is not a time zone"),
     ([], {"ROOMCTL_TIMEZONE": "EST5EDT/x"}, "ROOMCTL_TIMEZONE: 'EST5EDT/x' is not a time zone")],
)  # fmt: skip
def test_status_and_board_refuse_an_unknown_time_zone_by_name(
    args: list[str], env: dict[str, str], named: str, tmp_path: Path
) -> None:
    for command in ("status", "board"):
        out = subprocess.run(
            [sys.executable, "-m", "controller.cli", command, "--broker", "mqtt://127.0.0.1:1",
             "--site", SITE, *args,
             *(["--no-auth", "--board-db", str(tmp_path / "b.sqlite")] if command == "board"
               else ["--once"])],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env},
        )  # fmt: skip
        assert out.returncode == 2, (command, out.stderr)
        assert named in out.stderr and "IANA name" in out.stderr, (command, out.stderr)


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
def _envelope(room: str) -> dict[str, object]:
    return {"v": 1, "site": SITE, "room": room, "ts": "2026-01-31T08:00:00.000Z",
            "epoch": "0000000000000001", "clock_synced": True}  # fmt: skip


def test_the_overview_fits_80_columns_one_line_a_room_calls_first() -> None:
    """24 rooms at 80x24 (issue 20): calls first (most urgent, then longest waiting), one
    line per room whatever its call, alerts or trouble say."""
    state = SiteState(SITE)
    for n in range(201, 225):
        room = str(n)
        state.apply(room, "availability", b"online", 0.0)
        state.apply(room, "vitals", json.dumps({**_envelope(room), "seq": 1, "spo2": 97,
                    "pulse_rate": 72, "nibp_sys": 121, "nibp_dia": 79, "protocol": "x"}).encode(),
                    99.0)  # fmt: skip
    calls = {"221": ("emergency", "2026-01-31T08:00:30.000Z"),
             "205": ("normal", "2026-01-31T07:59:00.000Z"),
             "210": ("normal", "2026-01-31T07:58:00.000Z")}  # fmt: skip
    for room, (priority, placed) in calls.items():
        state.apply(room, "call", json.dumps({**_envelope(room), "seq": 2, "status": "placed",
                    "call_id": f"c{room}", "priority": priority, "placed_at": placed,
                    "claimed_by": "a-very-long-nurse-name-to-wrap"}).encode(), 99.0)  # fmt: skip
    state.apply("224", "availability", b"offline", 0.0)
    console = Console(record=True, width=80, color_system=None)
    console.print(render_table(SITE, state.views(100.0), 100.0, "live", tz=NEW_YORK))
    lines = console.export_text().splitlines()
    assert "19:01 EST" in lines[0]  # the site's clock now (100 s after the epoch) in the title
    assert all(len(line) <= 80 for line in lines)
    rows = [line.strip() for line in lines if line.strip()[:3].isdigit()]
    assert len(rows) == 24  # one line each, nothing wrapped
    assert [r[:3] for r in rows[:3]] == ["221", "210", "205"]  # emergency, then the oldest
    assert "OFFLINE" in rows[3] and rows[3].startswith("224")
    assert len(lines) <= 24 + 6  # title, header and rule fit the rest of a 24-line screen


def test_room_detail_shows_what_the_room_publishes_about_itself() -> None:
    state = SiteState(SITE)
    state.apply("306", "availability", b"online", 0.0)
    health = {**_envelope("306"), "seq": 2,
              "monitor": {"status": "ok", "protocol": "masimo", "transport": "serial",
                          "last_reading_at": "2026-01-31T08:00:00.000Z",
                          "frames_accepted": 5400, "frames_rejected": 3},
              "buttons": "ok", "lights": "fault",
              "outbox": {"depth": 12, "oldest_age_s": 4.0, "cap": 200000, "refused": 1},
              "status_code": 0, "status_text": "ok", "uptime_s": 7260, "version": "0.1.0",
              "cert_not_after": "2027-01-31T08:00:00.000Z"}  # fmt: skip
    assert state.apply("306", "health", json.dumps(health).encode(), 0.0) is not None
    now = 1769846400.0 + 60  # 2026-01-31T08:01:00Z
    console = Console(record=True, width=100, color_system=None)
    console.print(render_room("306", state.views(now)[0], state.health("306"), now))
    text = console.export_text()
    for expected in ("monitor", "ok · masimo over serial", "5400 accepted, 3 rejected",
                     "12 waiting (oldest 4 s)", "1 refused", "synchronised", "ok / fault",
                     "2:01:00", "0.1.0", "2027-01-31 08:00:00 UTC (in"):  # fmt: skip
        assert expected in text, expected
    # the site's clock (issue 20): local 24-hour time with the zone named
    console = Console(record=True, width=100, color_system=None)
    berlin = ZoneInfo("Europe/Berlin")
    console.print(render_room("306", state.views(now)[0], state.health("306"), now, berlin))
    text = console.export_text()
    assert "2026-01-31 09:00:00 CET (1:00 ago)" in text  # the last reading
    assert "2027-01-31 09:00:00 CET (in" in text and "+00:00" not in text
    console = Console(record=True, width=100, color_system=None)
    console.print(render_room("999", None, None, now))
    assert "has not reported" in console.export_text()
