"""Board pages on history (the real logger's database), and the security basics, in headless
Chromium against a real Mosquitto, a real logger and a real room daemon."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.board.cli import register  # noqa: F401  (the CLI module imports cleanly)
from broker.logger.config import LoggerConfig
from broker.logger.service import Logger
from broker.mosquitto.run import Mosquitto
from contract import topics
from controller.cli import main as roomctl
from tests.support.board import PASSWORDS, SITE, BoardServer, FakeRoom, login
from tests.support.mqtt import Recorder, wait_until
from tests.support.room_process import start_room, stop_room

pytestmark = pytest.mark.broker
WAIT_MS = 15_000


@pytest.fixture
def logger_db(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "log.sqlite"
    cfg = LoggerConfig.model_validate(
        {"broker": mosquitto.url, "db": db, "site": SITE, "synchronous": "NORMAL"}
    )
    logger = Logger(cfg).start()
    try:
        assert logger.subscribed.wait(10)
        yield db
    finally:
        logger.stop()


def _csrf(page: Page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content") or ""


def _post(page: Page, url: str, body: dict[str, object], csrf: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    resp = page.request.post(url, data=json.dumps(body), headers=headers)
    return resp.status, resp.json()


def _call_row(db: Path, room: str) -> tuple | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT call_id, claimed_by, response_s, resolved_s FROM calls WHERE room = ?", (room,)
        ).fetchone()
    finally:
        conn.close()


def test_room_page_report_and_call_log_from_the_logger(
    mosquitto: Mosquitto, logger_db: Path, page: Page, tmp_path: Path
) -> None:
    board = BoardServer(mosquitto.url, tmp_path, logger_db=logger_db).start()
    (tmp_path / "room").mkdir()
    proc = start_room(mosquitto.url, tmp_path / "room", SITE, "105")
    try:
        with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
            login(page, board.url, "alice")
            tile = page.locator("#room-105")
            expect(tile.locator(".phase-name")).to_have_text("Idle", timeout=WAIT_MS)
            api = f"{board.url}/api/rooms/105"
            for phase in ("pre_check", "infusion"):
                status, _ = _post(
                    page, api + "/phase", {"phase": phase, "confirm": True}, _csrf(page)
                )
                assert status == 200
                expect(tile.locator(".phase-name")).to_have_text(
                    "Pre-check" if phase == "pre_check" else "Infusion", timeout=WAIT_MS
                )
            # the monitor: readings published with paho (seq far above the daemon's own)
            fake = FakeRoom(rec, "105", start_seq=10**9)
            for spo2 in (97, 96, 95, 91, 90, 93, 96):
                fake.vitals(spo2=spo2, pulse_rate=88, nibp_sys=128, nibp_dia=80, resp_rate=14)
            # a call: placed in the room, claimed on the board, cancelled in the room
            rec.publish(topics.sim_button(SITE, "105"), {"button": "call", "action": "press"})
            rec.publish(topics.sim_button(SITE, "105"), {"button": "call", "action": "release"})
            expect(tile.locator(".call")).to_have_attribute(
                "data-status", "placed", timeout=WAIT_MS
            )
            tile.get_by_role("button", name="Claim call in room 105").click()
            expect(tile.locator(".claimed")).to_have_text("✓ responding: alice", timeout=WAIT_MS)
            rec.publish(topics.sim_button(SITE, "105"), {"button": "cancel", "action": "press"})
            rec.publish(topics.sim_button(SITE, "105"), {"button": "cancel", "action": "release"})
            expect(tile.locator(".call")).to_have_attribute("data-status", "idle", timeout=WAIT_MS)
            wait_until(
                lambda: (row := _call_row(logger_db, "105")) is not None and row[3] is not None,
                20,
                "the logger stored the cancelled call",
            )
            _call_id, claimed_by, response_s, _ = _call_row(logger_db, "105") or ()
            assert claimed_by == "alice" and response_s is not None

        # call log: the call with its response time, and the daily summary
        page.goto(board.url + "/calls")
        row = page.locator("#calls tbody tr").first
        expect(row).to_contain_text("105")
        expect(row).to_contain_text("alice")
        expect(row).to_contain_text(f"{response_s:.0f} s")
        expect(page.locator("#summary")).to_contain_text("Calls1")
        expect(page.locator("#summary")).to_contain_text("Claimed1")

        # room page: four uPlot charts with the thresholds in their legends, and the timeline
        page.goto(board.url + "/rooms/105")
        charts = page.locator("#charts .chart-box")
        expect(charts).to_have_count(4, timeout=WAIT_MS)
        expect(page.locator("#charts canvas")).to_have_count(4)
        expect(page.locator('[data-chart="spo2"]')).to_contain_text("spo2_low < 92 (high)")
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("call claimed", timeout=WAIT_MS)
        expect(timeline).to_contain_text("by alice")
        expect(timeline).to_contain_text("phase changed")

        # the printable report and its PDF
        page.goto(board.url + "/rooms/105/report")
        expect(page.locator("svg.chart")).to_have_count(4)
        expect(page.locator("svg.chart").first).to_contain_text("spo2_low < 92 (high)")
        expect(page.locator("table").last).to_contain_text("Call claimed by alice")
        pdf = page.request.get(board.url + "/rooms/105/report.pdf")
        assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
    finally:
        stop_room(proc)
        board.stop()


def test_login_csrf_rate_limit_and_expiry(
    mosquitto: Mosquitto, board: BoardServer, page: Page
) -> None:
    page.goto(board.url + "/rooms/101")
    expect(page).to_have_url(f"{board.url}/login?next=%2Frooms%2F101")
    page.fill("#username", "alice")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert").first).to_contain_text("Wrong name or password")

    # actions need the session's CSRF token
    login(page, board.url, "alice")
    rec = Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]).start()
    try:
        FakeRoom(rec, "106").call("placed", call_id="c-106", priority="normal")
        expect(page.locator("#room-106 .call")).to_have_attribute(
            "data-status", "placed", timeout=WAIT_MS
        )
    finally:
        rec.stop()
    url = f"{board.url}/api/rooms/106/claim"
    assert _post(page, url, {"call_id": "c-106"}, None)[0] == 403
    assert _post(page, url, {"call_id": "c-106"}, "not-the-token")[0] == 403
    assert _post(page, url, {"call_id": "c-106"}, _csrf(page))[0] == 200
    assert _post(page, url, {"call_id": "other"}, _csrf(page))[0] == 409
    status, body = _post(
        page, f"{board.url}/api/rooms/106/phase", {"phase": "pre_check"}, _csrf(page)
    )
    assert status == 400 and "confirmed" in body["error"]

    # an expired login session sends the browser back to the login page
    board.board.users.conn.execute("UPDATE sessions SET expires_at = 0")
    page.goto(board.url + "/")
    expect(page).to_have_url(f"{board.url}/login?next=%2F")

    # five wrong passwords for a name, then even the right one is refused for a while
    for _ in range(5):
        resp = page.request.post(
            board.url + "/login",
            form={"username": "victor", "password": "nope", "login_csrf": "x"},
            headers={"Cookie": "roomctl_login=x"},
            max_redirects=0,
        )
        assert resp.status == 303
    resp = page.request.post(
        board.url + "/login",
        form={"username": "victor", "password": PASSWORDS["victor"], "login_csrf": "x"},
        headers={"Cookie": "roomctl_login=x"},
        max_redirects=0,
    )
    assert resp.status == 429


def test_no_auth_only_on_loopback(
    mosquitto: Mosquitto, page: Page, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["board", "--broker", mosquitto.url, "--site", SITE, "--db", str(tmp_path / "x.sqlite")]
    assert roomctl([*argv, "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "--no-auth is refused on 0.0.0.0" in capsys.readouterr().err
    board = BoardServer(mosquitto.url, tmp_path / "noauth", no_auth=True).start()
    try:
        page.goto(board.url + "/")
        expect(page).to_have_url(board.url + "/")
        expect(page.locator(".who")).to_contain_text("board (nurse)")
        expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
        # without login, only loopback Host names are served (DNS rebinding)
        resp = page.request.get(board.url + "/api/rooms", headers={"Host": "evil.example"})
        assert resp.status == 400
        assert page.request.get(board.url + "/api/rooms").status == 200
    finally:
        board.stop()


def test_user_add_cli_hashes_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    db = tmp_path / "board.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    assert (
        roomctl(
            [
                "board",
                "user",
                "add",
                "nina",
                "--role",
                "nurse",
                "--password-stdin",
                "--board-db",
                str(db),
            ]
        )
        == 0
    )
    conn = sqlite3.connect(db)
    (pw_hash,) = conn.execute("SELECT pw_hash FROM users WHERE name = 'nina'").fetchone()
    conn.close()
    assert pw_hash.startswith("$argon2id$") and "s3cret" not in pw_hash
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        roomctl(
            [
                "board",
                "user",
                "add",
                "nora",
                "--role",
                "viewer",
                "--password-stdin",
                "--board-db",
                str(db),
            ]
        )
        == 2
    )


def test_roomctl_board_command_serves_and_stops(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from broker.mosquitto.run import free_port, wait_port

    db = tmp_path / "log.sqlite"
    add = subprocess.run(
        [sys.executable, "-m", "controller.cli", "board", "user", "add", "nina", "--role",
         "nurse", "--password-stdin", "--db", str(db)],
        input="nina-password-1\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    assert (tmp_path / "board.sqlite").exists()  # beside the logger's database
    # without a terminal and without --password-stdin: a clear message, no traceback
    blind = subprocess.run(
        [sys.executable, "-m", "controller.cli", "board", "user", "add", "omar", "--role",
         "nurse", "--db", str(db)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert blind.returncode == 2 and "Traceback" not in blind.stderr
    assert "--password-stdin" in blind.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "board", "--broker", mosquitto.url,
         "--site", SITE, "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 20)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return bool(json.loads(r.read())["broker_connected"])
            except urllib.error.HTTPError:
                return False

        wait_until(healthy, 20, "the board's broker link")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.url.endswith("/login?next=%2F")  # not logged in: the login page
            assert "content-security-policy" in {k.lower() for k in r.headers}
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert proc.stderr is not None
        proc.stderr.close()
