"""Shifts and wall displays on the board (issue 15), in real headless Chromium: ten minutes
before a login ends the page asks for the password and renews it in place; a kiosk (a wall
display's device login) watches, never acts, gets the wall layout and a clock, and its login
lasts days."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import PASSWORDS, SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        yield rec


def _expires(board: BoardServer, name: str) -> float:
    row = board.board.users.conn.execute(
        "SELECT MAX(expires_at) FROM sessions WHERE name = ?", (name,)
    ).fetchone()
    return float(row[0])


def test_a_login_about_to_end_is_renewed_in_place(board: BoardServer, page: Page) -> None:
    login(page, board.url, "alice")
    banner = page.locator("#renew-banner")
    expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
    expect(banner).to_be_hidden()
    # the login now ends in five minutes (as after a long shift)
    board.board.users.conn.execute(
        "UPDATE sessions SET expires_at = ? WHERE name = 'alice'", (time.time() + 300,)
    )
    page.reload()
    expect(banner).to_be_visible(timeout=WAIT_MS)
    expect(banner).to_contain_text("Your login ends at")
    page.fill("#renew-password", "not-her-password")
    banner.get_by_role("button", name="Stay logged in").click()
    expect(page.locator("#renew-error")).to_contain_text("wrong password")
    page.fill("#renew-password", PASSWORDS["alice"])
    banner.get_by_role("button", name="Stay logged in").click()
    expect(banner).to_be_hidden(timeout=WAIT_MS)
    assert _expires(board, "alice") > time.time() + 11 * 3600  # session_hours (12) again
    shown_ms = int(page.locator("body").get_attribute("data-expires") or 0)
    assert shown_ms > (time.time() + 11 * 3600) * 1000
    rows = board.board.users.audit_rows()
    assert any(r[1] == "alice" and r[2] == "renew" and r[5] == "wrong password" for r in rows)
    assert any(r[1] == "alice" and r[2] == "renew" and r[5] == "ok" for r in rows)
    expect(page.locator("#link")).to_have_text("● live")  # the same page, still streaming


def test_a_kiosk_watches_with_a_clock_never_acts_and_lasts_days(
    board: BoardServer, page: Page, recorder: Recorder
) -> None:
    room = FakeRoom(recorder, "101")
    room.online()
    room.state("infusion")
    room.call("placed", call_id="c-101", priority="infusion", type="normal",
              placed_at=room.env()["ts"])  # fmt: skip
    login(page, board.url, "wall")
    body = page.locator("body")
    expect(body).to_have_class(re.compile(r"\bkiosk\b"))
    expect(body).to_have_class(re.compile(r"\bwall\b"))
    # the site's local time with its zone named (issue 20)
    clock = re.compile(r"^\d\d:\d\d:\d\d UTC\s*$")
    expect(page.locator("#clock")).to_have_text(clock, timeout=WAIT_MS)
    row = page.locator("#queue-list .q-item")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row.get_by_role("button", name=re.compile("Claim"))).to_have_count(0)
    expect(page.locator("#renew-banner")).to_be_hidden()
    assert _expires(board, "wall") > time.time() + 6 * 24 * 3600
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    resp = page.request.post(
        f"{board.url}/api/rooms/101/claim", data=json.dumps({"call_id": "c-101"}), headers=headers
    )
    assert resp.status == 403
