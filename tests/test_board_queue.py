"""The one queue (issue 15), pure: what goes in, in which order, from real room messages."""

from __future__ import annotations

import json
from typing import Any

from broker.board.live import SiteState
from broker.board.queue import new_calls, site_queue

SITE = "test"


def _env(room: str, seq: int) -> dict[str, Any]:
    return {"v": 1, "site": SITE, "room": room, "ts": "2026-01-31T08:00:00.000Z",
            "epoch": "0000000000000001", "seq": seq, "clock_synced": True}  # fmt: skip


def _apply(state: SiteState, room: str, leaf: str, seq: int, **fields: Any) -> None:
    assert state.apply(room, leaf, json.dumps({**_env(room, seq), **fields}).encode(), 0.0)


def _site() -> SiteState:
    s = SiteState(SITE)
    _apply(s, "201", "call", 1, status="placed", call_id="c201", priority="normal",
           placed_at="2026-01-31T07:45:00.000Z")  # fmt: skip
    _apply(s, "221", "call", 1, status="placed", call_id="c221", priority="emergency",
           type="emergency", placed_at="2026-01-31T07:59:00.000Z")  # fmt: skip
    _apply(s, "105", "state", 1, phase="infusion", since="2026-01-31T07:00:00.000Z", alerts=[
        {"name": "spo2_low", "field": "spo2", "severity": "high", "value": 87, "threshold": 90,
         "since": "2026-01-31T07:50:00.000Z"},
        {"name": "rr_low", "field": "resp_rate", "severity": "low", "value": 7, "threshold": 8,
         "since": "2026-01-31T07:40:00.000Z"}])  # fmt: skip
    _apply(s, "110", "state", 1, phase="recovery", since="2026-01-31T07:00:00.000Z", alerts=[
        {"name": "MON", "field": "monitor", "severity": "medium", "source": "monitor",
         "since": "2026-01-31T07:55:00.000Z"}])  # fmt: skip
    _apply(s, "112", "state", 1, phase="infusion", since="2026-01-31T07:00:00.000Z")
    _apply(s, "113", "state", 1, phase="idle", since="2026-01-31T07:00:00.000Z")
    for room in ("112", "113"):
        assert s.apply(room, "availability", b"offline", 1_769_846_400.0)  # 2026-01-31T08:00Z
    return s


def test_level_first_then_age_and_low_alarms_stay_on_the_tile() -> None:
    items = site_queue(_site().views(0.0))
    assert [i["key"] for i in items] == [
        "alarm|105|vitals|spo2_low",
        "call|221|c221",
        "offline|112",  # offline during a session; 113 (idle) is not an alarm
        "alarm|110|monitor|MON",
        "call|201|c201",
    ]
    emergency = items[1]
    assert emergency["emergency"] and emergency["sounding"] and emergency["tier"] == 1
    offline = items[2]
    assert offline["level"] == "high" and offline["since"] == "2026-01-31T08:00:00.000Z"
    assert "call status unknown" in offline["what"]


def test_offline_room_view_says_when_and_colours_out_of_range_numbers() -> None:
    views = {v["room"]: v for v in _site().views(0.0)}
    assert views["112"]["offline_in_session"] and not views["113"]["offline_in_session"]
    assert views["112"]["offline_since"] == "2026-01-31T08:00:00.000Z"
    assert views["105"]["out_of_range"] == {"spo2": "high", "rr": "low"}
    assert views["110"]["out_of_range"] == {}  # a monitor alarm names no number


def test_a_claimed_call_stays_queued_but_no_longer_sounds() -> None:
    s = _site()
    _apply(s, "201", "call", 2, status="claimed", call_id="c201", priority="normal",
           placed_at="2026-01-31T07:45:00.000Z", claimed_by="nina")  # fmt: skip
    item = next(i for i in site_queue(s.views(0.0)) if i["key"] == "call|201|c201")
    assert item["claimed_by"] == "nina" and not item["sounding"]


def test_new_calls_are_the_calls_not_seen_before() -> None:
    items = site_queue(_site().views(0.0))
    assert [i["key"] for i in new_calls({"call|201|c201"}, items)] == ["call|221|c221"]


def test_a_notifier_report_lands_on_its_call_and_a_bad_one_is_counted() -> None:
    s = _site()
    report = {"room": "201", "call_id": "c201", "tier": 1, "recipient": "nina",
              "channel": "ntfy", "attempt": 2, "ok": False, "detail": "HTTP 503",
              "status": "pending", "at": "2026-01-31T08:00:01.000Z"}  # fmt: skip
    assert s.apply("201", "page", json.dumps(report).encode(), 0.0) is not None
    assert s.apply("201", "page", json.dumps({**report, "attempt": 3, "ok": True,
                   "detail": "HTTP 200", "status": "delivered"}).encode(), 0.0)  # fmt: skip
    assert s.apply("201", "page", b'{"room": "201"}', 0.0) is None and s.rejected == 1
    # a report about another room than the topic's is refused, not put on that room's call
    assert s.apply("221", "page", json.dumps(report).encode(), 0.0) is None and s.rejected == 2
    item = next(i for i in site_queue(s.views(0.0)) if i["key"] == "call|201|c201")
    latest = {"call_id": "c201", "tier": 1, "recipient": "nina", "channel": "ntfy", "ok": True,
              "status": "delivered", "detail": "HTTP 200", "attempt": 3,
              "at": "2026-01-31T08:00:01.000Z",
              "text": "paged nina (ntfy) · call c201 tier 1 · delivered at attempt 3"}  # fmt: skip
    assert item["deliveries"] == [latest]
