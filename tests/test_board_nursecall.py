"""Nurse call on the board (real headless Chromium) and in `roomctl status` (issue 14): a real
simulated room with several calls at once, staff presence and a call cord out; each call is
claimed on its own; a room not yet upgraded (schema 1) still shows its call."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder
from tests.support.room_process import start_room, stop_room

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def sim(rec: Recorder, room: str, button: str, *actions: str) -> None:
    for action in actions:
        rec.publish(topics.sim_button(SITE, room), {"button": button, "action": action})


def test_board_and_status_show_presence_several_calls_and_cord_out(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "room").mkdir()
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "111")
    try:
        login(page, board.url, "alice")
        tile = page.locator("#room-111")
        expect(tile.locator(".avail")).to_have_text("● online", timeout=WAIT_MS)
        sim(recorder, "111", "emergency", "press", "release")
        sim(recorder, "111", "assist", "press", "release")
        sim(recorder, "111", "cord", "open")
        sim(recorder, "111", "presence", "press", "release")

        call_box = tile.locator(".call")
        expect(call_box).to_contain_text("EMERGENCY CALL · HIGH", timeout=WAIT_MS)
        expect(call_box).to_have_attribute("data-count", "3", timeout=WAIT_MS)
        more = tile.locator(".more-call")
        expect(more).to_have_count(2)
        expect(more.nth(0)).to_contain_text("STAFF ASSIST · MEDIUM")
        expect(more.nth(1)).to_contain_text("CORD OUT (trouble)")
        expect(more.nth(1)).to_have_attribute("data-type", "cord_out")
        modes = tile.locator(".modes")
        expect(modes.locator(".presence")).to_contain_text("Staff present", timeout=WAIT_MS)
        expect(modes.locator(".cord-out")).to_have_text("⚠ Call cord out")
        expect(tile.locator(".trouble-item")).to_contain_text("call cord out")

        # each call is claimed on its own: claim the assist, the emergency stays unclaimed
        mark = len(recorder.messages)
        assist_id = more.nth(0).get_attribute("data-call-id")
        more.nth(0).get_by_role("button", name="Claim staff assist in room 111").click()
        claim = recorder.wait_for(lambda m: m.topic.endswith("/cmd/claim/board"), since=mark)
        assert claim.json()["call_id"] == assist_id and claim.json()["by"] == "alice"
        expect(more.nth(0).locator(".claimed")).to_have_text("✓ responding: alice", timeout=WAIT_MS)
        expect(call_box.get_by_role("button", name="Claim call in room 111")).to_be_visible()

        def status(*extra: str) -> str:
            out = subprocess.run(
                [sys.executable, "-m", "controller.cli", "status", "--broker", mosquitto.url,
                 "--site", SITE, "--once", *extra],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "COLUMNS": "120", "TERM": "dumb"},
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            return out.stdout

        text = status()  # one line per room: its most urgent call and how many more
        assert "!!! emergency placed" in text and "+2" in text
        assert "staff present" in text and "CORD OUT" in text
        text = status("--room", "111")  # every call in the room's detail
        assert "!!! emergency placed" in text
        assert "!! assist claimed" in text and "claimed by alice" in text
        assert "! cord_out placed" in text

        sim(recorder, "111", "cord", "close")
        expect(more).to_have_count(1, timeout=WAIT_MS)
        expect(modes.locator(".cord-out")).to_have_count(0)
    finally:
        stop_room(proc)


def test_a_room_on_schema_1_still_shows_its_call(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "112")
    room.online()
    room.state("infusion")
    room.call("escalated", call_id="c-112", priority="infusion", placed_at=room.env()["ts"],
              escalated_at=room.env()["ts"], v=1)  # fmt: skip
    login(page, board.url, "alice")
    call_box = page.locator("#room-112 .call")
    expect(call_box).to_contain_text("CALL (infusion) · HIGH", timeout=WAIT_MS)
    expect(call_box).to_contain_text("tier 2")
    expect(page.locator("#room-112 .more-call")).to_have_count(0)
