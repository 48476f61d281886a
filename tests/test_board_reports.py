"""The manager's pages in headless Chromium (issue 20): the call reports, room reliability and
the audit viewer on the scripted day of tests/support/report_day.py (written into a real
SQLite log as the logger writes it), their CSV downloads, and who may open them. The browser
runs in New York time: the pages are rendered by the server, in the site's zone."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page

from broker.logger.store import open_store
from broker.mosquitto.run import Mosquitto
from tests.support.board import BoardServer, login
from tests.support.report_day import audit_script, day_batch

pytestmark = pytest.mark.broker
DAY = "from=2026-11-03&to=2026-11-03"


@pytest.fixture
def day_board(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BoardServer]:
    """The board reading a logger database that holds the scripted day, and its audit rows."""
    db = tmp_path / "log.sqlite"
    store = open_store(db)
    store.write_batch(day_batch())
    store.close()
    server = BoardServer(mosquitto.url, tmp_path, logger_db=db)
    users = server.board.users
    clock = users.now
    for when, name, action, room, payload, result in audit_script():
        users.now = when.timestamp
        users.audit(name, action, room, payload, result)
    users.now = clock
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ny_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id="America/New_York",
        accept_downloads=True,
    )  # fmt: skip
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def _table(page: Page, selector: str) -> list[list[str]]:
    rows = page.locator(f"{selector} tbody tr")
    return [
        [c.strip() for c in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
    ]


def _csv(page: Page, link: str) -> tuple[str, list[list[str]]]:
    with page.expect_download() as got:
        page.click(link)
    download = got.value
    text = Path(download.path()).read_text(encoding="utf-8")
    return download.suggested_filename, list(csv.reader(io.StringIO(text)))


def test_call_reports_show_the_scripted_day_and_download_csv(
    day_board: BoardServer, ny_page: Page
) -> None:
    base = day_board.url
    login(ny_page, base, "alice")  # a nurse: the same names the call log shows her
    ny_page.goto(f"{base}/reports?{DAY}")
    assert "(UTC)" in ny_page.locator("h1").inner_text()
    summary = [ny_page.locator(f"#total-{k}").inner_text() for k in
               ("calls", "answered", "median", "p90", "max")]  # fmt: skip
    assert summary == ["7", "6", "0:40", "3:00", "3:00"]
    assert _table(ny_page, "#by-priority") == [
        ["emergency", "1", "1", "0:40", "0:40", "0:40"],
        ["high", "2", "2", "1:00", "1:30", "1:30"],
        ["normal", "3", "3", "0:30", "3:00", "3:00"],
        ["trouble", "1", "0", "–", "–", "–"],
    ]
    assert _table(ny_page, "#by-shift_day") == [
        ["2026-11-03 day", "4", "4", "0:40", "3:00", "3:00"],
        ["2026-11-03 night", "3", "2", "0:20", "1:30", "1:30"],
    ]
    assert _table(ny_page, "#by-nurse")[2] == ["(in the room)", "2", "2", "0:20", "1:00", "1:00"]
    assert [r[0] for r in _table(ny_page, "#by-type")] == [
        "assist", "bath", "cord_out", "emergency", "normal"]  # fmt: skip
    name, rows = _csv(ny_page, "#csv-room")
    assert name == "roomctl-test-calls-by-room-2026-11-03_2026-11-03.csv"
    assert rows == [
        ["room", "calls", "answered", "median s", "p90 s", "max s"],
        ["101", "3", "3", "90.0", "180.0", "180.0"],
        ["102", "2", "2", "20.0", "60.0", "60.0"],
        ["103", "2", "1", "40.0", "40.0", "40.0"],
    ]
    resp = ny_page.request.get(f"{base}/reports.csv?table=nurse&{DAY}")
    assert resp.status == 200 and resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"].startswith("attachment; filename=")
    assert resp.text().splitlines()[1] == "alice,2,2,30.0,40.0,40.0"
    # bad input: a clear 400 naming the field
    bad = ny_page.request.get(f"{base}/reports?from=2026-13-01&to=2026-11-03")
    assert bad.status == 400 and bad.text().startswith("from:")
    bad = ny_page.request.get(f"{base}/reports.csv?table=beds&{DAY}")
    assert bad.status == 400 and "table: must be one of" in bad.text()
    # the call log counts a call answered at the bedside as answered, with its response
    ny_page.goto(f"{base}/calls?day=2026-11-03")
    assert ny_page.locator("#answered").inner_text() == "6"
    assert "Response median40 s" in ny_page.locator("#summary").inner_text().replace("\n", "")
    calls = _table(ny_page, "#calls")
    by_room_time = {(r[1], r[0][:8]): r[6] for r in calls}  # "20:00:00 UTC"
    # a test call is listed as one and counted in no figure of the day
    assert {(r[1], r[0][:8]): r[2] for r in calls}[("104", "12:00:00")] == "TEST CALL"
    assert by_room_time[("104", "12:00:00")] == "–"
    summary = ny_page.locator("#summary").inner_text().replace("\n", "")
    assert len(calls) == 8 and "Calls7" in summary
    assert by_room_time[("102", "20:00:00")] == "20 s (in the room)"
    assert by_room_time[("102", "09:00:00")] == "60 s (presence)"
    assert by_room_time[("103", "11:00:00")] == "40 s (presence)"  # present before the claim
    assert by_room_time[("103", "21:00:00")] == "–"
    # an empty day says so
    ny_page.goto(f"{base}/reports?from=2026-10-01&to=2026-10-02")
    assert _table(ny_page, "#by-room") == [["No calls in this range."]]


def test_room_reliability_page_and_csv(day_board: BoardServer, ny_page: Page) -> None:
    base = day_board.url
    login(ny_page, base, "victor")  # a viewer sees the reports
    ny_page.goto(f"{base}/reliability?{DAY}")
    rows = {r[0]: r for r in _table(ny_page, "#reliability")}
    assert sorted(rows) == ["101", "102", "103", "104"]
    assert rows["101"][1:3] == ["2", "2:08:00"]  # 8 min + the open 2 h to midnight
    assert rows["101"][5:8] == ["1", "12 at 2026-11-03 10:08:05", "1:36"]  # 95.5 s waiting
    assert rows["102"][1:3] == ["1", "30:00"]
    assert rows["104"][3:5] == ["2", "5:30"]
    assert rows["103"][8].startswith("2 (")
    periods = _table(ny_page, "#periods")
    assert ["101", "offline", "2026-11-03 10:00:00", "2026-11-03 10:08:00", "8:00"] in periods
    assert ["101", "offline", "2026-11-03 22:00:00", "not back by 2026-11-04 00:00:00",
            "2:00:00"] in periods  # fmt: skip
    name, got = _csv(ny_page, "#csv-reliability")
    assert name == "roomctl-test-reliability-2026-11-03_2026-11-03.csv"
    assert got[0][:3] == ["room", "offline periods", "offline s"]
    assert got[1][:4] == ["101", "2", "7680.0", "7200.0"]
    assert got[1][7:10] == ["12", "2026-11-03 10:08:05", "95.5"]


def test_audit_viewer_filters_and_csv_for_the_charge_nurse(
    day_board: BoardServer, ny_page: Page
) -> None:
    base = day_board.url
    login(ny_page, base, "rita")
    ny_page.goto(f"{base}/audit?{DAY}")
    rows = _table(ny_page, "#audit")
    assert [r[:4] for r in rows] == [
        ["2026-11-03 07:55:00", "alice", "login", ""],
        ["2026-11-03 08:00:30", "alice", "claim", "101"],
        ["2026-11-03 10:03:00", "bob", "claim", "101"],
        ["2026-11-03 12:00:00", "rita", "assign", "102"],
        ["2026-11-03 12:30:00", "victor", "refused", "103"],
    ]  # the login of the day before is outside the range; rita's own login is today
    ny_page.fill("input[name=person]", "alice")
    ny_page.click("#range button[type=submit]")
    ny_page.wait_for_url("**person=alice**")
    assert [r[2] for r in _table(ny_page, "#audit")] == ["login", "claim"]
    name, got = _csv(ny_page, "#csv-audit")
    assert name == "roomctl-test-audit-2026-11-03_2026-11-03.csv"
    assert got == [
        ["time", "person", "action", "room", "detail", "result"],
        ["2026-11-03 07:55:00", "alice", "login", "", "", "ok"],
        ["2026-11-03 08:00:30", "alice", "claim", "101", '{"call_id": "c1"}', "sent"],
    ]
    resp = ny_page.request.get(f"{base}/audit.csv?{DAY}&room=101")
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert [line.split(",")[1] for line in resp.text().splitlines()[1:]] == ["alice", "bob"]
    bad = ny_page.request.get(f"{base}/audit?{DAY}&room=../etc")
    assert bad.status == 400 and bad.text().startswith("room:")


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("wall", ()), ("victor", ("/reports", "/reliability")), ("alice", ("/reports",
     "/reliability")), ("rita", ("/reports", "/reliability", "/audit"))],
)  # fmt: skip
def test_who_may_open_the_reports(
    day_board: BoardServer, ny_page: Page, user: str, allowed: tuple[str, ...]
) -> None:
    base = day_board.url
    for path in ("/reports", "/reliability", "/audit", "/audit.csv", "/reports.csv?table=room"):
        assert ny_page.request.get(base + path, max_redirects=0).status == 303  # not logged in
    login(ny_page, base, user)
    nav = ny_page.locator("header nav a").all_inner_texts()
    for path in ("/reports", "/reliability", "/audit"):
        status = ny_page.request.get(base + path).status
        assert status == (200 if path in allowed else 403), (user, path)
        assert (path.title()[1:] in nav) == (path in allowed), (user, nav)
    csv_status = ny_page.request.get(f"{base}/audit.csv?{DAY}").status
    assert csv_status == (200 if "/audit" in allowed else 403)
    if user == "wall":
        refused = day_board.board.users.audit_query(0, 4e9, "wall")
        assert [r.action for r in refused].count("refused") == 4


def test_an_unreadable_log_is_a_clear_503(mosquitto: Mosquitto, tmp_path: Path, page: Page) -> None:
    bad = tmp_path / "log.sqlite"
    bad.write_bytes(b"not a database " * 512)
    server = BoardServer(mosquitto.url, tmp_path, logger_db=bad).start()
    try:
        login(page, server.url, "rita")
        for path in ("/reports", "/reports.csv?table=room", "/reliability", "/reliability.csv"):
            resp = page.request.get(f"{server.url}{path}{'&' if '?' in path else '?'}{DAY}")
            assert resp.status == 503, path
            assert resp.text().startswith("The logger's database could not be read")
            assert resp.headers["retry-after"] == "60"
        assert page.request.get(f"{server.url}/audit?{DAY}").status == 200  # the board's own
    finally:
        server.stop()


def test_pages_follow_the_site_zone(
    day_board: BoardServer, ny_page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the site in New York (UTC-5 that day) the same day is 05:00Z to 05:00Z: the shifts,
    the periods and the audit times move with it."""
    # the site's setting (`roomctl board --timezone`), as the board reads it
    monkeypatch.setattr(day_board.board.config, "tz", ZoneInfo("America/New_York"))
    base = day_board.url
    login(ny_page, base, "rita")
    ny_page.goto(f"{base}/reports?{DAY}")
    assert "(America/New_York)" in ny_page.locator("h1").inner_text()
    assert [r[:3] for r in _table(ny_page, "#by-shift_day")] == [
        ["2026-11-02 night", "4", "4"], ["2026-11-03 day", "3", "2"]]  # fmt: skip
    ny_page.goto(f"{base}/reliability?{DAY}")
    periods = _table(ny_page, "#periods")
    assert ["101", "offline", "2026-11-03 05:00:00", "2026-11-03 05:08:00", "8:00"] in periods
    assert "102" not in {r[0] for r in periods}  # its 00:00-00:30Z was the evening before
    ny_page.goto(f"{base}/audit?{DAY}")
    assert _table(ny_page, "#audit")[0][:3] == ["2026-11-03 02:55:00", "alice", "login"]
