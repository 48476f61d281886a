"""The site's clock in the browser (issue 20): the board's pages show the site's local 24-hour
time with the zone named, never the browser's own zone. The site is in New York, the browser
(Playwright's `timezone_id`) in Berlin: six hours apart, so a page that used the browser's
zone would show other hours, and an evening call in New York is the next day in Berlin/UTC."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from broker.mosquitto.run import Mosquitto
from contract import sitetime, topics
from tests.support.board import SITE, BoardServer, FakeRoom
from tests.support.mqtt import Recorder, wait_until
from tests.support.session_log import ROOM, write_calls

pytestmark = pytest.mark.broker
WAIT_MS = 15_000
SITE_ZONE = "America/New_York"
BROWSER_ZONE = "Europe/Berlin"
NEW_YORK = sitetime.site_zone(SITE_ZONE)
# 21:30 on Monday 30 November in New York: 02:30 on 1 December in UTC, 03:30 in Berlin
EVENING = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
MORNING = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 08:00 on 1 December in New York


@pytest.fixture
def board(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BoardServer]:
    db = write_calls(tmp_path / "log.db", SITE, {"c-evening": EVENING, "c-morning": MORNING})
    server = BoardServer(
        mosquitto.url, tmp_path, no_auth=True, logger_db=db, timezone=SITE_ZONE
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_evening_call_lands_on_the_sites_local_day(board: BoardServer, browser: Browser) -> None:
    context = browser.new_context(timezone_id=BROWSER_ZONE)
    page = context.new_page()
    try:
        page.goto(board.url + "/calls?day=2026-11-30")
        expect(page.locator("h1")).to_have_text("Call log, 2026-11-30 (America/New_York)")
        rows = page.locator("#calls tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("21:30:00 EST")  # not 03:30 (Berlin), not 02:30 (UTC)
        expect(page.locator("#summary")).to_contain_text("Calls1")
        page.goto(board.url + "/calls?day=2026-12-01")
        rows = page.locator("#calls tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("08:00:00 EST")
        # the page's own formatter: the site's clock and day, whatever the browser's zone
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
        stamp = EVENING.isoformat()
        assert page.evaluate(f"Board.siteTime('{stamp}')") == "21:30 EST"
        assert page.evaluate(f"Board.siteTime('{stamp}', {{seconds: true}})") == "21:30:00 EST"
        assert page.evaluate(f"Board.siteDay('{stamp}')") == "2026-11-30"
        summer = "2026-07-01T03:30:00Z"  # the zone's other abbreviation, from the server
        assert page.evaluate(f"Board.siteTime('{summer}')") == "23:30 EDT"
    finally:
        context.close()


def test_room_chart_and_event_list_use_the_sites_clock(
    board: BoardServer, browser: Browser, mosquitto: Mosquitto
) -> None:
    context = browser.new_context(timezone_id=BROWSER_ZONE)
    page = context.new_page()
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        room = FakeRoom(rec, ROOM)
        room.online()
        room.state("infusion", session_id="sess-tz")
        wait_until(lambda: board.board.state.view(ROOM, board.board.clock()) is not None, 10,
                   "the board saw the room")  # fmt: skip
        readings = [room.vitals(spo2=97.0 - n, pulse_rate=70.0) for n in range(3)]
        wait_until(lambda: len(board.board.state.recent_vitals(ROOM)) >= 3, 10,
                   "the board saw the readings")  # fmt: skip
        try:
            page.goto(f"{board.url}/rooms/{ROOM}")
            chart = page.locator('[data-chart="spo2"]')
            expect(chart.locator("canvas")).to_have_count(1, timeout=WAIT_MS)
            # the legend under the cursor names the reading's time on the site's clock
            box = chart.locator(".u-over").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            legend_time = chart.locator(".u-legend .u-series").first.locator(".u-value")
            expect(legend_time).to_have_text(re.compile(r"^\d\d:\d\d:\d\d E[SD]T$"))
            shown = legend_time.inner_text()
            assert shown in {sitetime.hms(r.ts, NEW_YORK) for r in readings}, shown
            # the time axis: its labels are the site's 24-hour clock (the readings are within
            # a few seconds: every label is their minute in New York, give or take one)
            near = {
                sitetime.local(r.ts + timedelta(minutes=d), NEW_YORK).strftime("%H:%M")
                for r in readings
                for d in (-1, 0, 1)
            }
            expect(chart).to_have_attribute("data-time-axis", re.compile(r"\d\d:\d\d"))
            labels = (chart.get_attribute("data-time-axis") or "").split()
            assert labels and set(labels) <= near, labels
            # the event list
            event = room.event("phase_changed", phase="infusion", from_phase="pre_check")
            item = page.locator("#timeline li").filter(has_text="phase changed")
            expect(item).to_have_count(1, timeout=WAIT_MS)
            expect(item.locator("time")).to_have_text(sitetime.hms(event.ts, NEW_YORK))
        finally:
            context.close()
