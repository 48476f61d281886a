"""Small board items people hit (issue 20), in headless Debian Chromium against a real
Mosquitto: no glyph that Debian's fonts lack (it renders as an empty box), tile values that
never run into each other, the login rate limit as a page (JSON for API clients), and an
offline tile that names the time of its last reading instead of "last reading 0:00 ago"."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import PASSWORDS, SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder

pytestmark = pytest.mark.broker
WAIT_MS = 15_000
BOARD = Path(__file__).resolve().parent.parent / "broker" / "board"
# The non-ASCII characters the board may show: all in DejaVu Sans (fonts-dejavu-core, which
# Debian's fontconfig always brings); emoji are not, and show as empty boxes there.
DEJAVU_GLYPHS = set("·–—…→←₂°✓✕⚠⟳⬆★●⚕×")


def _board_text_files() -> list[Path]:
    static = [p for p in (BOARD / "static").glob("*") if p.suffix in (".js", ".css")]
    return [*static, *(BOARD / "templates").glob("*.html"), BOARD / "calls_view.py",
            BOARD / "report_summary.py", BOARD / "svg_chart.py"]  # fmt: skip


def test_the_board_uses_no_glyph_that_debian_fonts_lack() -> None:
    found = {
        (path.name, ch, unicodedata.name(ch, hex(ord(ch))))
        for path in _board_text_files()
        for ch in path.read_text(encoding="utf-8")
        if ord(ch) > 127 and ch not in DEJAVU_GLYPHS
    }
    assert not found, sorted(found)


def _busy_room(rec: Recorder, room: str) -> FakeRoom:
    fake = FakeRoom(rec, room)
    fake.online()
    now = fake.env()["ts"]
    fake.state(
        "infusion",
        presence={"since": now, "until": None},
        alerts=[  # every value out of range: each gets its level mark ("201/104 !!!")
            {"name": f"{field}_x", "field": field, "severity": "high", "value": 1.0,
             "threshold": 2.0, "since": now}
            for field in ("spo2", "pulse_rate", "nibp_sys", "resp_rate")
        ],
    )  # fmt: skip
    fake.vitals(spo2=100, pulse_rate=180, nibp_sys=201, nibp_dia=104, resp_rate=40)
    fake.call("placed", call_id=f"c{room}", priority="emergency", type="emergency",
              placed_at=fake.env()["ts"])  # fmt: skip
    return fake


@pytest.mark.parametrize("user", ["victor", "wall"])
def test_tiles_show_only_known_glyphs_and_values_never_overlap(
    mosquitto: Mosquitto, board: BoardServer, page: Page, user: str
) -> None:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        for room in ("201", "202", "203", "204", "205", "206"):
            _busy_room(rec, room)
        page.set_viewport_size({"width": 640, "height": 800})
        login(page, board.url, user)
        tile = page.locator("#room-206")
        expect(tile.locator(".v-nibp")).to_contain_text("201/104", timeout=WAIT_MS)
        expect(tile.locator(".presence")).to_contain_text("Staff present")
        expect(tile.locator(".v-nibp")).to_have_class(re.compile("oor"))
        text = page.locator("body").inner_text()
        strange = sorted({ch for ch in text if ord(ch) > 127 and ch not in DEJAVU_GLYPHS})
        assert not strange, strange
        # every value keeps its own box: none overlaps another, none overflows its own
        overlaps = page.evaluate(
            """() => [...document.querySelectorAll('.tile .vitals')].flatMap((box) => {
                 const rects = [...box.querySelectorAll('.vital')]
                   .map((v) => v.getBoundingClientRect());
                 const bad = [];
                 rects.forEach((a, i) => rects.slice(i + 1).forEach((b) => {
                   const x = a.left < b.right && b.left < a.right;
                   const y = a.top < b.bottom && b.top < a.bottom;
                   if (x && y) bad.push([a.left, a.right, b.left, b.right]);
                 }));
                 if (box.scrollWidth > box.clientWidth + 1) bad.push('vitals wider than the tile');
                 box.querySelectorAll('.vital dd').forEach((dd) => {
                   if (dd.scrollWidth > dd.parentElement.clientWidth + 1) bad.push(dd.textContent);
                 });
                 return bad;
               })"""
        )
        assert overlaps == []


def test_the_login_rate_limit_is_a_page_and_json_for_api_clients(
    board: BoardServer, page: Page
) -> None:
    page.goto(board.url + "/login")
    for _ in range(board.board.limiter.per_address):
        page.fill("#username", "victor")
        page.fill("#password", "wrong-password")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_have_text("Wrong name or password.")
    page.fill("#username", "victor")
    page.fill("#password", PASSWORDS["victor"])
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 429 and int(answer.value.headers["retry-after"]) > 0
    assert "text/html" in answer.value.headers["content-type"]
    notice = page.locator("#rate-limited")
    expect(notice).to_have_text(
        re.compile(r"^Too many failed logins: wait \d+ s, then try again\.$")
    )
    expect(page.locator("#username")).to_be_visible()  # the form is there to try again later
    api = page.request.post(
        board.url + "/login",
        form={"username": "victor", "password": "x", "login_csrf": "t"},
        headers={"Cookie": "roomctl_login=t", "Accept": "application/json"},
        max_redirects=0,
    )
    assert api.status == 429 and int(api.headers["retry-after"]) > 0
    body = api.json()
    assert body["ok"] is False and body["error"].startswith("too many failed logins: try again")


def test_an_offline_tile_names_the_time_of_its_last_reading(
    mosquitto: Mosquitto, board: BoardServer, page: Page
) -> None:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        fake = FakeRoom(rec, "301")
        fake.online()
        fake.state("recovery")
        fake.vitals(spo2=97, pulse_rate=70)
        quiet = FakeRoom(rec, "302")  # never sent a reading
        quiet.online()
        quiet.state("idle")
        login(page, board.url, "victor")
        tile = page.locator("#room-301")
        expect(tile.locator(".v-spo2")).to_have_text("97", timeout=WAIT_MS)
        rec.publish(topics.availability(SITE, "301"), "offline", retain=True)
        rec.publish(topics.availability(SITE, "302"), "offline", retain=True)
        age = tile.locator(".vitals-age")
        expect(age).to_have_text(re.compile(r"^offline: no reading since \d\d:\d\d UTC$"),
                                 timeout=WAIT_MS)  # fmt: skip
        expect(page.locator("#room-302 .vitals-age")).to_have_text("no vitals received yet",
                                                                   timeout=WAIT_MS)  # fmt: skip
        for text in page.locator(".vitals-age").all_inner_texts():
            assert "ago" not in text and "0:00" not in text, text
