"""Board pieces without a broker or a browser: live state, hub, accounts, limiter, history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broker.board import history, svg_chart
from broker.board.calls_view import call_level
from broker.board.hub import QUEUE, Hub
from broker.board.hub import SITE as SITE_KEY
from broker.board.live import SiteState
from broker.board.security import LoginLimiter, is_loopback_host, same_token
from broker.board.thresholds import thresholds_for
from broker.board.users import BoardDB, UserError
from broker.logger.store import open_store
from contract.messages import CallPriority, CallStatus

TS = "2026-01-31T08:00:00.000Z"


def env(room: str = "101", seq: int = 1, site: str = "s1") -> dict[str, Any]:
    return {
        "v": 1,
        "site": site,
        "room": room,
        "epoch": "0000000000000001",
        "seq": seq,
        "ts": TS,
        "clock_synced": True,
    }


def raw(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_site_state_keeps_latest_and_refuses_bad_payloads() -> None:
    s = SiteState("s1")
    assert s.apply("101", "availability", b"online", 1.0) is not None
    assert s.apply("101", "state", raw(**env(seq=5), phase="infusion", since=TS), 1.0)
    # an older retained copy does not overwrite a newer state
    assert s.apply("101", "state", raw(**env(seq=4), phase="idle", since=TS), 2.0) is None
    assert s.apply("101", "availability", b"maybe", 2.0) is None
    assert s.apply("101", "vitals", raw(**env(seq=6), spo2=101, protocol="x"), 2.0) is None
    assert (
        s.apply("101", "state", raw(**env(seq=7, site="other"), phase="idle", since=TS), 2.0)
        is None
    )
    assert s.apply("101", "cmd/claim", raw(call_id="c", by="x"), 2.0) is None
    assert s.rejected == 3  # the older state is ignored, not rejected
    view = s.view("101", 3.0)
    assert view is not None
    assert view["phase"] == "infusion" and view["availability"] == "online"
    assert view["vitals"] is None and view["vitals_stale"] is True


def test_room_view_call_vitals_trouble() -> None:
    s = SiteState("s1")
    s.apply("101", "call", raw(**env(seq=1), call_id="c1", priority="infusion", status="placed",
                               placed_at=TS), 1.0)  # fmt: skip
    s.apply(
        "101",
        "vitals",
        raw(**env(seq=2), pulse_rate=80, spo2=97, protocol="x"),
        10.0,
    )
    health = {"monitor": {"status": "silent"}, "buttons": "ok", "lights": "fault",
              "outbox": {"depth": 120, "cap": 1000}, "uptime_s": 1, "version": "t"}  # fmt: skip
    s.apply(
        "101",
        "health",
        raw(**{**env(seq=3), "clock_synced": False}, **health),
        10.0,
    )
    view = s.view("101", 12.0)
    assert view is not None
    assert view["call"]["level"] == "medium" and view["call"]["status"] == "placed"
    assert view["vitals"]["hr"] == 80 and view["vitals"]["hr_source"] == "pulse"
    assert view["vitals_stale"] is False
    assert view["trouble"] == [
        "monitor silent", "lights fault", "outbox 120 queued", "clock not synced",
    ]  # fmt: skip
    assert s.view("101", 16.0)["vitals_stale"] is True  # type: ignore[index]
    s.apply("101", "call", raw(**env(seq=4), status="idle"), 20.0)
    assert s.view("101", 20.0)["call"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("priority", "status", "level"),
    [
        (CallPriority.NORMAL, CallStatus.PLACED, "low"),
        (CallPriority.INFUSION, CallStatus.PLACED, "medium"),
        (CallPriority.EMERGENCY, CallStatus.PLACED, "high"),
        (CallPriority.NORMAL, CallStatus.ESCALATED, "medium"),
        (CallPriority.INFUSION, CallStatus.ESCALATED, "high"),
        (CallPriority.EMERGENCY, CallStatus.ESCALATED, "high"),
    ],
)
def test_call_level(priority: CallPriority, status: CallStatus, level: str) -> None:
    assert call_level(priority, status) == level


def test_hub_coalesces_per_room_and_filters() -> None:
    async def scenario() -> None:
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        everything, only_101 = hub.subscribe(), hub.subscribe("101")
        for room in ("101", "102", "101", "101", None):
            hub.notify_threadsafe(room)
        await asyncio.wait_for(everything.event.wait(), 5)
        await asyncio.sleep(0)  # let the remaining call_soon callbacks run
        assert everything.take() == {"101", "102", SITE_KEY}
        # another room's change reaches a one-room stream as the site's queue only
        assert only_101.take() == {"101", SITE_KEY, QUEUE}
        assert not everything.event.is_set()
        hub.unsubscribe(everything)
        assert hub.subscribers == 1

    asyncio.run(scenario())


def test_accounts_sessions_expiry_and_audit(tmp_path: Path) -> None:
    now = [1000.0]
    db = BoardDB(tmp_path / "b.sqlite", clock=lambda: now[0])
    db.add_user("alice", "nurse", "long-password")
    with pytest.raises(UserError):
        db.add_user("alice", "viewer", "long-password")
    with pytest.raises(UserError):
        db.add_user("bob", "admin", "long-password")
    with pytest.raises(UserError):
        db.add_user("bob", "viewer", "short")
    assert db.verify("alice", "long-password") == "nurse"
    assert db.verify("alice", "wrong") is None
    assert db.verify("nobody", "long-password") is None
    token, sess = db.new_session("alice", 60)
    assert sess.can_act and db.session(token) == sess
    assert db.session("forged") is None
    now[0] += 61
    assert db.session(token) is None  # expired
    token, _ = db.new_session("alice", 60)
    db.add_user("alice", "viewer", "another-password", replace=True)
    assert db.session(token) is None  # a changed account ends its sessions
    stored = db.conn.execute("SELECT token_sha FROM sessions").fetchall()
    assert all(token not in row[0] for row in stored)
    db.audit("alice", "claim", "101", "{}", "sent")
    assert db.audit_rows()[0][1:] == ("alice", "claim", "101", "{}", "sent")
    db.close()


def test_login_limiter_counts_before_the_hash_per_address_more_than_per_name() -> None:
    now = [0.0]
    lim = LoginLimiter(per_address=3, per_name=5, window_s=60, clock=lambda: now[0])
    for _ in range(3):  # in flight: counted before any hash is checked
        wait, _ = lim.attempt("a", "x")
        assert wait == 0
    wait, ticket = lim.attempt("a", "y")
    assert wait == pytest.approx(60) and ticket == 0  # the address is done, whatever the name
    assert lim.attempt("b", "x")[0] == 0 and lim.attempt("c", "x")[0] == 0
    assert lim.attempt("d", "x")[0] == pytest.approx(60)  # 5 for the name from elsewhere
    now[0] = 61
    assert lim.retry_after("a", "x") == 0
    # a right password is no failure, and makes the address trusted for that name
    wait, ticket = lim.attempt("home", "x")
    lim.succeeded("home", "x", ticket)
    for addr in "pqrst":
        assert lim.attempt(addr, "x")[0] == 0  # a stranger's guesses from 5 addresses
    assert lim.attempt("u", "x")[0] > 0  # the name is limited for new addresses
    assert lim.attempt("home", "x")[0] == 0  # but not from where its owner logs in
    assert lim.hashes_spared >= 3


def test_loopback_and_tokens() -> None:
    assert (
        is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    )
    assert is_loopback_host("127.0.0.2")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("board.example")
    assert same_token("abc", "abc") and not same_token("abc", "abd")
    assert not same_token("", "") and not same_token(None, None)


def test_daily_summary() -> None:
    def call(
        resp: float | None, resolved: float | None, prio: str, esc: bool = False
    ) -> dict[str, Any]:
        return {"priority": prio, "response_s": resp, "resolved_s": resolved,
                "claimed_at": TS if resp is not None else None,
                "escalated_at": TS if esc else None,
                "cancelled_at": TS if resolved is not None else None}  # fmt: skip

    rows = [call(10, 60, "normal"), call(30, 90, "emergency"), call(None, None, "normal", True)]
    s = history.daily_summary(rows)
    assert s["calls"] == 3 and s["claimed"] == 2 and s["never_claimed"] == 1
    assert s["escalated"] == 1 and s["open"] == 1
    assert s["response_median_s"] == 20 and s["response_max_s"] == 30
    assert s["by_priority"] == {"normal": 2, "emergency": 1}
    assert history.daily_summary([])["response_median_s"] is None


def test_history_without_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    store = open_store(missing, readonly=True)
    assert history.vitals(store, "s1", "101", TS) == []
    assert history.calls(store, "s1", TS, TS) == []
    assert history.session(None, "s1", "101", "x") is None
    assert not missing.exists()


def test_svg_chart_escapes_and_draws_thresholds() -> None:
    rows = [
        {"ts": "2026-01-31T08:00:00.000Z", "spo2": 97, "pulse_rate": 80, "nibp_sys": None},
        {"ts": "2026-01-31T08:00:10.000Z", "spo2": None, "pulse_rate": 82, "nibp_sys": None},
        {"ts": "2026-01-31T08:00:20.000Z", "spo2": 91, "pulse_rate": 85, "nibp_sys": 130},
    ]
    thr = thresholds_for("infusion")
    assert {t["name"] for t in thr} >= {"spo2_low", "hr_high", "sys_high", "rr_low"}
    thr.append(
        {"name": "<script>", "chart": "spo2", "op": "below", "threshold": 50, "severity": "low"}
    )
    charts = {c["key"]: str(c["svg"]) for c in svg_chart.session_charts(rows, thr, ZoneInfo("UTC"))}
    assert "<script>" not in charts["spo2"] and "&lt;script&gt;" in charts["spo2"]
    assert "spo2_low &lt; 92 (high)" in charts["spo2"]
    assert charts["spo2"].count("<polyline") == 2  # the missing reading breaks the line
    assert "hr_high &gt; 130 (medium)" in charts["hr"]
    assert "<circle" in charts["nibp"]  # sparse NIBP: drawn as points


def test_every_route_goes_through_the_guard() -> None:
    from starlette.routing import Route

    from broker.board import api, pages, report_pages
    from broker.board.guard import GUARDED, Access

    expected = {
        ("GET", "/login"): Access.PUBLIC,
        ("POST", "/login"): Access.PUBLIC,
        ("POST", "/logout"): Access.SESSION,
        ("GET", "/healthz"): Access.PUBLIC,
        ("GET", "/metrics"): Access.PUBLIC,
        ("GET", "/"): Access.PAGE,
        ("GET", "/rooms/{room}"): Access.PAGE,
        ("GET", "/rooms/{room}/report"): Access.PAGE,
        ("GET", "/rooms/{room}/report.pdf"): Access.PAGE,
        ("GET", "/calls"): Access.PAGE,
        ("GET", "/reports"): Access.PAGE,
        ("GET", "/reports.csv"): Access.PAGE,
        ("GET", "/reliability"): Access.PAGE,
        ("GET", "/reliability.csv"): Access.PAGE,
        ("GET", "/audit"): Access.PAGE,
        ("GET", "/audit.csv"): Access.PAGE,
        ("GET", "/api/stream"): Access.READ,
        ("GET", "/api/rooms"): Access.READ,
        ("GET", "/api/rooms/{room}/session"): Access.READ,
        ("GET", "/api/rooms/{room}/commands"): Access.READ,
        ("GET", "/api/whoami"): Access.READ,
        ("POST", "/api/rooms/{room}/claim"): Access.ACT,
        ("POST", "/api/rooms/{room}/phase"): Access.ACT,
        ("POST", "/api/rooms/{room}/test_call"): Access.ACT,
        ("GET", "/api/assignments"): Access.READ,
        ("POST", "/api/assignments"): Access.ACT,
        ("POST", "/api/receipts"): Access.SESSION,
        ("POST", "/api/session/renew"): Access.SESSION,
    }
    got = {}
    for route in [*pages.routes(), *api.routes(), *report_pages.routes()]:
        assert isinstance(route, Route)
        methods = sorted((route.methods or set()) - {"HEAD"})
        assert route.endpoint in GUARDED, f"{methods} {route.path} is not guarded"
        got[(methods[0], route.path)] = GUARDED[route.endpoint]
    assert got == expected
