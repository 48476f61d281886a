"""The staff board in real headless Chromium (issue 18): a blood pressure measured minutes
before it arrived is shown with its age, kept between cuff cycles and aging as the page's
clock moves; a monitor in demo mode is listed as device trouble."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def test_old_nibp_shows_its_age_and_demo_mode_is_trouble(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "107")
    room.online()
    page.clock.install()
    login(page, board.url, "alice")
    room.vitals(spo2=97, nibp_sys=142, nibp_dia=86, age_s={"nibp_sys": 1080.0},
                observed_at={"nibp_sys": "2026-11-25T08:26:00"})  # fmt: skip
    tile = page.locator("#room-107")
    expect(tile.locator(".v-nibp")).to_have_text("142/86 (18 min ago)", timeout=WAIT_MS)
    room.vitals(spo2=96)  # the next second's reading carries no blood pressure
    expect(tile.locator(".v-spo2")).to_have_text("96", timeout=WAIT_MS)
    expect(tile.locator(".v-nibp")).to_have_text("142/86 (18 min ago)")
    page.clock.run_for(120_000)  # the page's clock: two minutes later
    expect(tile.locator(".v-nibp")).to_have_text("142/86 (20 min ago)", timeout=WAIT_MS)
    room.vitals(spo2=95, quality=["demo_mode"])
    expect(tile.locator(".trouble-item")).to_contain_text("demo mode", timeout=WAIT_MS)
    expect(tile).to_have_class("tile demo")
