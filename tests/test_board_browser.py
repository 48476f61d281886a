"""The board in real headless Chromium (Debian's, through Playwright), served on 127.0.0.1, with a
real Mosquitto and real room daemons (`roomctl room run --simulate`) or contract-valid
messages published with paho.

Timing is measured and printed (`-s` shows it), never asserted: the expectations wait with
generous timeouts.
"""

from __future__ import annotations

import json
import signal
import time
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


def _set_phase(page: Page, room: str, phase: str) -> None:
    tile = page.locator(f"#room-{room}")
    tile.get_by_role("button", name="Set phase…").click()
    dialog = page.locator("#phase-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#phase-select").select_option(phase)
    dialog.get_by_role("button", name="Confirm phase change").click()


def test_nurse_sees_infusion_call_and_claims_it(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "room").mkdir()
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "101")
    try:
        login(page, board.url, "alice")
        tile = page.locator("#room-101")
        expect(tile.locator(".avail")).to_have_text("● online", timeout=WAIT_MS)
        expect(tile.locator(".phase-name")).to_have_text("Idle", timeout=WAIT_MS)

        # a room moves into infusion: set from the board, with confirmation, as alice
        _set_phase(page, "101", "pre_check")
        expect(tile.locator(".phase-name")).to_have_text("Pre-check", timeout=WAIT_MS)
        _set_phase(page, "101", "infusion")
        expect(tile.locator(".phase-name")).to_have_text("Infusion", timeout=WAIT_MS)
        sent = recorder.wait_for(lambda m: m.topic.endswith("/cmd/phase/board"))
        assert sent.json()["by"] == "alice" and not sent.retain

        # a call appears (during infusion: priority raised), measured not asserted
        t0 = time.monotonic()
        recorder.publish(topics.sim_button(SITE, "101"), {"button": "call", "action": "press"})
        recorder.publish(topics.sim_button(SITE, "101"), {"button": "call", "action": "release"})
        call_box = tile.locator(".call")
        expect(call_box).to_have_attribute("data-status", "placed", timeout=WAIT_MS)
        print(f"\ncall button -> tile shows the call: {(time.monotonic() - t0) * 1000:.0f} ms")
        expect(call_box).to_contain_text("CALL")
        expect(call_box).to_contain_text("MEDIUM")  # a call during infusion
        expect(call_box).to_have_class("call lvl-medium")

        # claim publishes cmd/claim as alice; the room's retained call then names her
        mark = len(recorder.messages)
        call_box.get_by_role("button", name="Claim call in room 101").click()
        claim = recorder.wait_for(lambda m: m.topic.endswith("/cmd/claim/board"), since=mark)
        body = claim.json()
        assert body["by"] == "alice" and body["call_id"] and not claim.retain
        expect(call_box.locator(".claimed")).to_have_text("✓ responding: alice", timeout=WAIT_MS)
        audit = board.board.users.audit_rows()
        assert any(a[1] == "alice" and a[2] == "claim" and a[5] == "sent" for a in audit)
    finally:
        stop_room(proc)


def test_offline_room_is_shown_offline(
    mosquitto: Mosquitto, board: BoardServer, page: Page, tmp_path: Path
) -> None:
    (tmp_path / "room").mkdir()
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "102")
    killed = False
    try:
        login(page, board.url, "victor")
        tile = page.locator("#room-102")
        expect(tile.locator(".avail")).to_have_text("● online", timeout=WAIT_MS)
        expect(tile).not_to_have_class("tile offline")
        stop_room(proc, signal.SIGKILL)  # no goodbye: the broker publishes the Will
        killed = True
        expect(tile.locator(".avail")).to_have_text("✕ OFFLINE", timeout=WAIT_MS)
        expect(tile).to_have_class("tile offline")
        expect(tile.locator(".vitals-age")).to_contain_text("no vitals")
    finally:
        if not killed:
            stop_room(proc)


def test_viewer_cannot_claim(board: BoardServer, page: Page, recorder: Recorder) -> None:
    room = FakeRoom(recorder, "103")
    room.online()
    room.state("recovery")
    placed = room.call("placed", call_id="c-103-1", priority="emergency",
                       placed_at=room.env()["ts"])  # fmt: skip
    login(page, board.url, "victor")
    tile = page.locator("#room-103")
    call_box = tile.locator(".call")
    expect(call_box).to_contain_text("EMERGENCY CALL · HIGH", timeout=WAIT_MS)
    expect(call_box).to_have_class("call lvl-high emergency")
    expect(call_box.locator(".unclaimed")).to_have_text("not claimed")
    expect(call_box.get_by_role("button")).to_have_count(0)
    expect(tile.get_by_role("button", name="Set phase…")).to_have_count(0)
    # a forged request with the viewer's own valid CSRF token is refused by the server
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    resp = page.request.post(
        f"{board.url}/api/rooms/103/claim",
        data=json.dumps({"call_id": placed.call_id}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf or ""},
    )
    assert resp.status == 403
    assert "viewer" in resp.json()["error"]
    assert any(a[1] == "victor" and a[5] == "viewer" for a in board.board.users.audit_rows())


def test_vitals_alerts_trouble_and_staleness(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "104")
    room.online()
    now = room.env()["ts"]
    room.state(
        "infusion",
        session_id="s-104",
        alerts=[{"name": "spo2_low", "field": "spo2", "severity": "high", "value": 89,
                 "threshold": 92, "since": now}],
    )  # fmt: skip
    room.health(monitor={"status": "silent"})
    page.clock.install()
    login(page, board.url, "alice")
    room.vitals(spo2=89, pulse_rate=101, nibp_sys=131, nibp_dia=84, resp_rate=12)
    tile = page.locator("#room-104")
    expect(tile.locator(".v-spo2")).to_have_text("89", timeout=WAIT_MS)
    expect(tile.locator(".v-hr")).to_have_text("101")
    expect(tile.locator(".v-nibp")).to_have_text("131/84")
    expect(tile.locator(".v-rr")).to_have_text("12")
    expect(tile.locator(".vitals")).not_to_have_class("vitals stale")
    alert = tile.locator(".alert")
    expect(alert).to_contain_text("HIGH alert: spo2_low")
    expect(alert).to_have_class("alert lvl-high")
    expect(tile.locator(".trouble-item")).to_contain_text("monitor silent")
    page.clock.run_for(8000)  # the browser's clock: the reading is now 8 s old
    expect(tile.locator(".vitals")).to_have_class("vitals stale", timeout=WAIT_MS)
    expect(tile.locator(".vitals-age")).to_contain_text("stale")


def test_broker_link_down_is_shown(mosquitto: Mosquitto, board: BoardServer, page: Page) -> None:
    login(page, board.url, "victor")
    link = page.locator("#link")
    expect(link).to_have_text("● live", timeout=WAIT_MS)
    mosquitto.stop()  # every tile is now old: the board must say so
    expect(link).to_contain_text("broker link down", timeout=WAIT_MS)
    expect(link).to_have_class("link down")
