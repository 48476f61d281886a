"""Central staff never miss a call (issue 15), in real headless Chromium with a real Mosquitto:
the board's sound (the page's audio calls recorded), the one queue and its order, never a false
"no call" (an offline room, the board's own broker link down), the tab title, and the layouts
at 1920x1080 (wall mode, 24 rooms), 1024x768 and 390 px.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from broker.mosquitto.run import Mosquitto
from contract import timefmt, topics
from tests.support.board import (
    AUDIO_PROBE,
    SITE,
    BoardServer,
    FakeRoom,
    audio_starts,
    favicon_colour,
    login,
    shift_start,
)
from tests.support.mqtt import Recorder
from tests.support.notifier import notifier_config, start_notifier
from tests.support.receivers import Receiver

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def ago(seconds: float) -> str:
    return timefmt.format_ts(datetime.now(UTC) - timedelta(seconds=seconds))


def _pulses(page: Page, at_least: int) -> None:
    page.wait_for_function(
        f"window.__audio.filter((a) => a.op === 'start').length >= {at_least}", timeout=WAIT_MS
    )


def test_no_sound_before_the_click_then_the_pattern_until_claimed(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    page.add_init_script(AUDIO_PROBE)
    page.clock.install()
    room = FakeRoom(recorder, "101")
    room.online()
    room.state("infusion", session_id="s-101")
    placed = room.call("placed", call_id="c-101-1", priority="infusion", type="normal",
                       placed_at=ago(30))  # fmt: skip
    login(page, board.url, "alice")
    row = page.locator("#queue-list .q-item")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row).to_contain_text("CALL")
    expect(row).to_contain_text("Room 101")
    expect(row).to_contain_text("tier 1")
    expect(row).to_contain_text("placed 0:3")

    # no sound before the shift-start click, and a banner nobody can miss
    banner = page.locator("#sound-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("SOUND IS OFF")
    expect(page.locator("body")).to_have_attribute("data-sound", "off")
    page.clock.run_for(20_000)
    assert audio_starts(page) == []
    expect(page).to_have_title("(1) Overview · test")
    assert favicon_colour(page) == (0xB3, 0x95, 0x00)  # the tab icon: one medium call

    # after the click: the medium pattern (three pulses), and it repeats
    shift_start(page)
    expect(banner).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-sound-pattern", "medium")
    _pulses(page, 3)
    assert audio_starts(page)[:3] == [660, 660, 660]
    page.clock.run_for(9_000)
    _pulses(page, 6)

    # claiming (the room's answer) stops it: no pulse later, however long we wait
    mark = len(recorder.messages)
    row.get_by_role("button", name="Claim call in room 101").click()
    claim = recorder.wait_for(lambda m: m.topic.endswith("/cmd/claim/board"), since=mark)
    assert claim.json()["call_id"] == placed.call_id
    room.call("claimed", call_id="c-101-1", priority="infusion", type="normal",
              placed_at=placed.placed_at, claimed_by="alice", claimed_at=ago(0))  # fmt: skip
    expect(row.locator(".q-claimed")).to_have_text("✓ responding: alice", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-sound-pattern", "none")
    count = len(audio_starts(page))
    page.clock.run_for(60_000)
    assert len(audio_starts(page)) == count


def test_an_emergency_cannot_be_silenced(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    page.add_init_script(AUDIO_PROBE)
    page.clock.install()
    emergency, normal = FakeRoom(recorder, "221"), FakeRoom(recorder, "102")
    for r in (emergency, normal):
        r.online()
        r.state("recovery")
    normal.call("placed", call_id="c-102", priority="normal", type="normal", placed_at=ago(90))
    emergency.call("placed", call_id="c-221", priority="emergency", type="emergency",
                   placed_at=ago(5))  # fmt: skip
    login(page, board.url, "alice")
    shift_start(page)
    rows = page.locator("#queue-list .q-item")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    expect(rows.nth(0)).to_have_attribute("data-room", "221")  # level first, then age
    expect(rows.nth(0)).to_have_attribute("data-emergency", "yes")
    expect(page.locator("body")).to_have_attribute("data-sound-pattern", "high")
    _pulses(page, 10)
    assert audio_starts(page)[:10] == [880] * 10  # a high burst: ten pulses

    # the emergency offers no silence, and the page refuses one asked for in code
    expect(rows.nth(0).get_by_role("button", name="Silence")).to_have_count(0)
    refused = page.evaluate(
        "Sound.silence({ key: 'call|221|c-221', emergency: true, level: 'high', sounding: true })"
    )
    assert refused is False
    # the ordinary call can be silenced on this screen: the emergency still sounds
    rows.nth(1).get_by_role("button", name="Silence").click()
    expect(rows.nth(1).locator(".q-silenced")).to_contain_text("silenced")
    page.clock.run_for(4 * 60_000)
    expect(page.locator("body")).to_have_attribute("data-sound-pattern", "high")
    assert len(audio_starts(page)) > 10
    expect(page).to_have_title("(2) Overview · test")
    assert favicon_colour(page) == (0xC6, 0x28, 0x28)  # the tab icon turns red for an emergency


def test_queue_order_offline_room_and_out_of_range_numbers(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    rooms = {n: FakeRoom(recorder, n) for n in ("105", "110", "112", "201", "221")}
    for r in rooms.values():
        r.online()
    rooms["201"].state("recovery")
    rooms["201"].call("placed", call_id="c-201", priority="normal", type="normal",
                      placed_at=ago(900))  # fmt: skip
    rooms["221"].state("infusion")
    rooms["221"].call("escalated", call_id="c-221", priority="emergency", type="emergency",
                      placed_at=ago(60), escalated_at=ago(20), tier=2)  # fmt: skip
    rooms["105"].state("infusion", alerts=[{"name": "spo2_low", "field": "spo2",
        "severity": "high", "value": 87, "threshold": 90, "since": ago(600)}])  # fmt: skip
    rooms["105"].vitals(spo2=87, pulse_rate=90)
    rooms["110"].state("recovery", alerts=[{"name": "MON_ALARM", "field": "monitor",
        "severity": "medium", "since": ago(300), "source": "monitor"}])  # fmt: skip
    rooms["112"].state("infusion", session_id="s-112")
    login(page, board.url, "alice")
    rows = page.locator("#queue-list .q-item")
    expect(rows).to_have_count(4, timeout=WAIT_MS)

    # room 112 goes offline during its session: a high technical alarm, never "no call"
    recorder.publish(topics.availability(SITE, "112"), "offline", retain=True)
    expect(rows).to_have_count(5, timeout=WAIT_MS)
    keys = [rows.nth(n).get_attribute("data-key") for n in range(5)]
    assert keys == [
        "alarm|105|vitals|spo2_low",  # high, oldest
        "call|221|c-221",  # high, escalated emergency
        "offline|112",  # high, newest
        "alarm|110|monitor|MON_ALARM",  # medium
        "call|201|c-201",  # low, oldest of all
    ]
    expect(rows.nth(1)).to_contain_text("ESCALATED")
    expect(rows.nth(1)).to_contain_text("tier 2")
    expect(rows.nth(1)).to_contain_text("placed 1:0")
    expect(rows.nth(1)).to_contain_text("escalated 0:")
    expect(rows.nth(2)).to_contain_text("call status unknown")
    expect(rows.nth(2)).to_contain_text("offline since")

    tile = page.locator("#room-112")
    expect(tile.locator(".call-unknown")).to_contain_text("call status unknown", timeout=WAIT_MS)
    expect(tile.locator(".call-unknown")).to_contain_text("offline since")
    expect(tile.locator(".call-unknown")).to_contain_text("(0 min)")
    expect(tile.locator(".no-call")).to_be_hidden()
    # a HIGH SpO2 87 is coloured as a high alarm, not a thin line under a black number
    expect(page.locator("#room-105 .v-spo2")).to_have_class("v-spo2 oor lvl-high")


def test_broker_link_down_dims_tiles_and_disables_actions(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "103")
    room.online()
    room.state("infusion")
    room.call("placed", call_id="c-103", priority="infusion", type="normal", placed_at=ago(10))
    login(page, board.url, "alice")
    claim = page.locator("#queue-list").get_by_role("button", name="Claim call in room 103")
    expect(claim).to_be_enabled(timeout=WAIT_MS)
    expect(page.locator("#link-banner")).to_be_hidden()
    mosquitto.stop()
    expect(page.locator("#link-banner")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#link-banner")).to_contain_text("BROKER LINK DOWN")
    expect(page.locator("body")).to_have_class("link-down")
    expect(claim).to_be_disabled()
    tile = page.locator("#room-103")
    expect(tile.get_by_role("button", name="Claim call in room 103")).to_be_disabled()
    expect(tile.get_by_role("button", name="Set phase…")).to_be_disabled()
    expect(tile.locator(".call-unknown")).to_contain_text("call status unknown")
    assert page.evaluate("getComputedStyle(document.querySelector('#room-103')).opacity") == "0.45"


def _fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.slow
def test_layouts_wall_1920_laptop_1024_and_phone_390(
    board: BoardServer, browser: Browser, recorder: Recorder
) -> None:
    for n in range(24):
        r = FakeRoom(recorder, f"2{n:02d}")
        r.online()
        r.state("infusion")
        r.vitals(spo2=97, pulse_rate=80, nibp_sys=120, nibp_dia=80, resp_rate=14)
    FakeRoom(recorder, "223", start_seq=100).call(
        "placed", call_id="c-223", priority="emergency", type="emergency", placed_at=ago(3)
    )

    def open_at(width: int, height: int, path: str = "/") -> Page:
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        login(page, board.url, "alice")
        if path != "/":
            page.goto(board.url + path)
        expect(page.locator(".tile")).to_have_count(24, timeout=WAIT_MS)
        expect(page.locator("#queue-list .q-item")).to_have_count(1, timeout=WAIT_MS)
        return page

    wall = open_at(1920, 1080, "/?wall=1")
    try:
        expect(wall.locator("body")).to_have_class("wall")
        shift_start(wall)  # sound on: the banner goes and the tiles get its room
        for n in range(24):
            box = wall.locator(f"#room-2{n:02d}").bounding_box()
            assert box is not None
            assert box["y"] + box["height"] <= 1080 and box["x"] + box["width"] <= 1920, n
        queue = wall.locator("#queue").bounding_box()
        assert queue is not None and queue["x"] < 50  # the queue column on the left
        assert _fits(wall)
    finally:
        wall.context.close()

    laptop = open_at(1024, 768)
    try:
        assert _fits(laptop)
        expect(laptop.locator("#queue")).to_be_in_viewport()
    finally:
        laptop.context.close()

    phone = open_at(390, 844)
    try:
        assert _fits(phone)
        queue = phone.locator("#queue").bounding_box()
        first = phone.locator("#room-200").bounding_box()
        assert queue is not None and first is not None and queue["y"] < first["y"]
        expect(phone.locator("#queue")).to_be_in_viewport()
    finally:
        phone.context.close()


def test_the_notifiers_pages_show_on_the_call(
    mosquitto: Mosquitto, board: BoardServer, page: Page, recorder: Recorder, tmp_path: Path
) -> None:
    with Receiver() as hook, Receiver(fail_first=1000) as push:
        proc = start_notifier(mosquitto.url, notifier_config(tmp_path, hook.url, push.url))
        try:
            room = FakeRoom(recorder, "101")
            room.online()
            room.state("infusion")
            room.call("placed", call_id="c-101", priority="infusion", type="normal", tier=1,
                      placed_at=ago(5))  # fmt: skip
            login(page, board.url, "alice")
            row = page.locator("#queue-list .q-item")
            # the webhook took it; the push server keeps failing: retried, and it says so
            expect(row.locator(".q-paged")).to_contain_text("nina ✓ webhook", timeout=WAIT_MS)
            expect(row.locator(".q-paged")).to_contain_text("nina ⟳ ntfy (HTTP 503)")
            expect(page.locator("#room-101 .call .paged")).to_contain_text("nina ✓ webhook")
        finally:
            proc.stop()
