"""'Send test call' (issue 20) end to end: a nurse on the room's page asks a real room daemon
(simulated GPIO, real Mosquitto) for a test call through `cmd/test_call/<board>`; the room
places it (type `test`), the board shows it labelled TEST with the command applied by the room,
and audits who asked. A viewer and a wall display get no button and are refused by the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import SITE, BoardServer, login
from tests.support.mqtt import Recorder
from tests.support.room_process import start_room, stop_room

pytestmark = pytest.mark.broker
WAIT_MS = 15_000
ROOM = "107"


def test_a_nurse_sends_a_test_call_and_the_room_places_it(
    mosquitto: Mosquitto, board: BoardServer, page: Page, browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "room").mkdir()
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, ROOM)
    try:
        with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
            login(page, board.url, "alice")
            page.goto(f"{board.url}/rooms/{ROOM}")
            tile = page.locator(f"#room-{ROOM}")
            expect(tile.locator(".phase-name")).to_have_text("Idle", timeout=WAIT_MS)
            button = tile.get_by_role("button", name="Send test call")
            expect(button).to_be_enabled(timeout=WAIT_MS)
            button.click()
            expect(tile.locator(".call")).to_contain_text("TEST CALL", timeout=WAIT_MS)
            expect(tile).to_contain_text("Test call by alice: applied by the room", timeout=WAIT_MS)
            sent = rec.wait_for(lambda m: "/cmd/test_call/" in m.topic)
            assert json.loads(sent.payload)["by"] == "alice"
            placed = rec.wait_for(
                lambda m: m.topic.endswith("/events") and b'"call_placed"' in m.payload
            )
            event = json.loads(placed.payload)
            assert event["by"] == "alice" and event["detail"]["call_type"] == "test"
            assert event["priority"] == "trouble"
            # the queue names it TEST too
            expect(page.locator("#queue-list")).to_contain_text("TEST", timeout=WAIT_MS)
        rows = board.board.users.audit_rows()
        assert any(r[1] == "alice" and r[2] == "test_call" and r[3] == ROOM for r in rows), rows
        # a viewer and a wall display: no button, and the API refuses them
        for user in ("victor", "wall"):
            context = browser.new_context()
            other = context.new_page()
            try:
                login(other, board.url, user)
                other.goto(f"{board.url}/rooms/{ROOM}")
                expect(other.locator(f"#room-{ROOM} .phase-name")).to_have_text(
                    "Idle", timeout=WAIT_MS
                )
                expect(other.get_by_role("button", name="Send test call")).to_have_count(0)
                csrf = other.locator('meta[name="csrf-token"]').get_attribute("content") or ""
                answer = other.request.post(
                    f"{board.url}/api/rooms/{ROOM}/test_call", data="{}",
                    headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
                )  # fmt: skip
                assert answer.status == 403, (user, answer.status)
            finally:
                context.close()
    finally:
        stop_room(proc)
