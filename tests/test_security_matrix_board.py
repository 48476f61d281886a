"""The board's security properties over plain HTTP, against the real app under uvicorn with a
real Mosquitto: unauthenticated requests refused, a viewer cannot act, sessions expire
(the users store's clock is moved, not the test's), the login resists brute force (per
name and per address), and every action is logged with the user who did it.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from broker.mosquitto.run import Mosquitto
from contract import topics
from tests.support.board import PASSWORDS, SITE, BoardServer, FakeRoom
from tests.support.mqtt import Recorder, wait_until
from tests.support.reliability_audit import FaultRecord, record

pytestmark = pytest.mark.broker

PAGES = [
    "/", "/rooms/101", "/rooms/101/report", "/rooms/101/report.pdf", "/calls",
    "/reports", "/reports.csv?table=room", "/reliability", "/reliability.csv", "/audit",
    "/audit.csv",
]  # fmt: skip
API_GET = [
    "/api/rooms",
    "/api/rooms/101/session",
    "/api/rooms/101/commands",
    "/api/whoami",
    "/api/stream",
]
API_POST = ["/api/rooms/101/claim", "/api/rooms/101/phase", "/api/rooms/101/test_call"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        self.csrf = ""

    def request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read(200_000)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def login(self, name: str, password: str) -> int:
        status, _, body = self.request("/login")
        assert status == 200
        match = re.search(rb'name="login_csrf" value="([^"]+)"', body)
        assert match
        form = {"username": name, "password": password, "login_csrf": match.group(1).decode()}
        status, headers, _ = self.request("/login", urllib.parse.urlencode(form).encode())
        if status == 303 and "error" not in headers.get("location", ""):
            page = self.request("/")[2]
            token = re.search(rb'name="csrf-token" content="([^"]*)"', page)
            self.csrf = token.group(1).decode() if token else ""
        return status

    def act(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, _, raw = self.request(
            path,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
        )
        return status, json.loads(raw or b"{}")


def test_unauthenticated_requests_are_refused(board: BoardServer) -> None:
    anon = Client(board.url)
    for path in PAGES:
        status, headers, _ = anon.request(path)
        assert status == 303 and headers["location"].startswith("/login"), path
    for path in API_GET:
        assert anon.request(path)[0] == 401, path
    for path in API_POST:
        assert anon.act(path, {"call_id": "x", "phase": "idle", "confirm": True})[0] == 401
    forged = {"Cookie": "roomctl_session=forged-token"}
    assert anon.request("/", headers=forged)[0] == 303
    assert anon.request("/api/whoami", headers=forged)[0] == 401
    assert anon.request("/healthz")[0] == 200  # the only open route, and it tells nothing
    n = len(PAGES) + len(API_GET) + len(API_POST) + 2
    record(
        FaultRecord(
            "board: unauthenticated requests",
            n,
            None,
            [],
            "pages -> login, API -> 401, forged cookie refused",
            kind="security",
        )
    )


def place_call(mosquitto: Mosquitto, board: BoardServer, room: str, call_id: str) -> None:
    with Recorder(mosquitto.url, ["none/#"]) as rec:
        FakeRoom(rec, room).call("placed", call_id=call_id, priority="normal")
    wait_until(
        lambda: (c := board.board.state.current_call(room)) is not None and c.call_id == call_id,
        10,
        "the board saw the call",
    )


def test_viewer_cannot_act_and_actions_are_logged_with_the_user(
    mosquitto: Mosquitto, board: BoardServer
) -> None:
    place_call(mosquitto, board, "106", "c-106")
    with Recorder(mosquitto.url, [topics.cmd_filter(SITE, "106")]) as cmds:
        viewer = Client(board.url)
        assert viewer.login("victor", PASSWORDS["victor"]) == 303 and viewer.csrf
        assert viewer.act("/api/rooms/106/claim", {"call_id": "c-106"})[0] == 403
        status, _ = viewer.act("/api/rooms/106/phase", {"phase": "pre_check", "confirm": True})
        assert status == 403
        nurse = Client(board.url)
        assert nurse.login("alice", PASSWORDS["alice"]) == 303
        assert nurse.act("/api/rooms/106/claim", {"call_id": "c-106"})[0] == 200
        status, _ = nurse.act("/api/rooms/106/phase", {"phase": "pre_check", "confirm": True})
        assert status == 200
        sent = cmds.wait_for(lambda m: m.topic.endswith("cmd/phase/board"))  # after the claim
        assert sent.json()["by"] == "alice"  # the board sends as itself, for its logged-in user
        seen = [(m.topic.split("/cmd/")[1], m.json()["by"]) for m in cmds.messages]
        assert seen == [("claim/board", "alice"), ("phase/board", "alice")]  # none from viewer
    rows = board.board.users.audit_rows()
    actions = sorted((name, action, room, result) for _, name, action, room, _, result in rows)
    assert actions == [
        ("alice", "claim", "106", "sent"),
        ("alice", "login", None, "ok"),
        ("alice", "phase", "106", "sent"),
        ("victor", "login", None, "ok"),
        ("victor", "refused", "106", "viewer"),
        ("victor", "refused", "106", "viewer"),
    ]
    claim = next(p for _, n, a, _, p, _ in rows if a == "claim")
    assert claim is not None and json.loads(claim)["by"] == "alice"
    record(
        FaultRecord(
            "board: viewer acts; actions audited with the user",
            4,
            None,
            [],
            "viewer 403 and nothing on cmd/; every action in the audit table with its user",
            kind="security",
        )
    )


def test_sessions_expire_and_logout_ends_them(board: BoardServer) -> None:
    nurse = Client(board.url)
    assert nurse.login("alice", PASSWORDS["alice"]) == 303
    assert nurse.request("/api/whoami")[0] == 200
    hours = board.config.session_hours
    board.board.users.now = lambda: time.time() + hours * 3600 + 1  # the store's clock moves
    try:
        assert nurse.request("/api/whoami")[0] == 401
        assert nurse.request("/")[0] == 303
    finally:
        board.board.users.now = time.time
    again = Client(board.url)
    assert again.login("alice", PASSWORDS["alice"]) == 303
    token = next(c.value for c in again.jar if c.name == "roomctl_session")
    form = urllib.parse.urlencode({"csrf": again.csrf}).encode()
    assert again.request("/logout", form)[0] == 303
    replay = Client(board.url)
    assert replay.request("/api/whoami", headers={"Cookie": f"roomctl_session={token}"})[0] == 401
    record(
        FaultRecord(
            "board: session expiry and logout",
            2,
            None,
            [],
            "expired and logged-out tokens refused",
            kind="security",
        )
    )


def test_login_is_rate_limited_per_name_and_per_address(board: BoardServer) -> None:
    attacker = Client(board.url)
    for _ in range(board.board.limiter.per_address):
        assert attacker.login("victor", "guess") == 303
    assert attacker.login("victor", PASSWORDS["victor"]) == 429  # even the right password
    # the same address trying other names is refused too (per-address key)
    assert attacker.login("alice", PASSWORDS["alice"]) == 429
    # after the window, the right password works again (the limiter's clock is moved)
    limiter = board.board.limiter
    limiter.clock = lambda: time.monotonic() + limiter.window_s + 1
    assert Client(board.url).login("victor", PASSWORDS["victor"]) == 303
    record(
        FaultRecord(
            "board: login brute force",
            board.board.limiter.per_address + 3,
            None,
            [],
            "429 after 5 failures per name and per address, even with the "
            "right password, until the window passes",
            kind="security",
        )
    )
