"""The board's `/metrics` and `/healthz`: the real board (uvicorn) fed by rooms through a real
Mosquitto, scraped over HTTP and read with prometheus_client's parser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.board.ops_routes import board_health
from broker.mosquitto.run import Mosquitto
from broker.ops.metrics import ALLOWED_LABELS, check_labels
from contract import topics
from contract.timefmt import format_ts
from tests.support.board import SITE, BoardServer, FakeRoom
from tests.support.mqtt import Recorder, wait_until
from tests.support.sdnotify import notified_service

pytestmark = pytest.mark.broker
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS | {"le"}, s
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def room(r: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"site": SITE, "room": r, **extra}.items()))


def test_board_metrics_show_rooms_calls_and_streams(board: BoardServer, mosquitto: Any) -> None:
    t0 = datetime.now(UTC) - timedelta(seconds=60)
    with Recorder(mosquitto.url, [topics.all_rooms_filter(SITE)]) as rec:
        a, b = FakeRoom(rec, "201"), FakeRoom(rec, "202")
        a.online()
        a.state("infusion", session_id="s-201")
        a.health(outbox={"depth": 7, "cap": 1000}, monitor={"status": "disconnected"})
        a.vitals(spo2=97)
        a.event("call_placed", call_id="c1", priority="normal", ts=format_ts(t0))
        a.event("call_claimed", call_id="c1", by="alice", ts=format_ts(t0 + timedelta(seconds=42)))
        a.event("call_claimed", call_id="c1", by="alice")  # a replay: counted once
        b.online()
        b.state("idle")
        b.call("placed", call_id="c2", priority="emergency", placed_at=format_ts(t0))
        b.event("call_placed", call_id="c3", priority="infusion", ts=format_ts(t0))
        b.event("call_cancelled", call_id="c3", ts=format_ts(t0 + timedelta(seconds=65)))
        rec.publish(topics.availability(SITE, "203"), "offline", retain=True)

        def settled() -> bool:
            got = scrape(board.url)
            return got.get(("roomctl_board_call_response_seconds_count",
                            (("priority", "infusion"), ("site", SITE)))) == 1 and (
                "roomctl_room_online", room("203")) in got  # fmt: skip

        wait_until(settled, 15, "the board saw every message")
        got = scrape(board.url)
    site = (("site", SITE),)
    assert got[("roomctl_board_rooms_online", site)] == 2
    assert got[("roomctl_room_online", room("201"))] == 1
    assert got[("roomctl_room_online", room("203"))] == 0
    assert got[("roomctl_room_in_session", room("201"))] == 1
    assert got[("roomctl_room_in_session", room("202"))] == 0
    assert got[("roomctl_room_outbox_depth", room("201"))] == 7
    assert got[("roomctl_room_monitor_up", room("201"))] == 0
    assert 0 <= got[("roomctl_room_vitals_age_seconds", room("201"))] < 3600
    assert got[("roomctl_board_active_calls", (("priority", "emergency"), ("site", SITE)))] == 1
    normal = (("priority", "normal"), ("site", SITE))
    assert got[("roomctl_board_call_response_seconds_count", normal)] == 1
    assert got[("roomctl_board_call_response_seconds_sum", normal)] == pytest.approx(42.0)
    assert got[("roomctl_board_call_response_seconds_bucket", (("le", "45.0"), *normal))] == 1
    infusion = (("priority", "infusion"), ("site", SITE))
    assert got[("roomctl_board_call_response_seconds_sum", infusion)] == pytest.approx(65.0)
    assert got[("roomctl_board_broker_connected", site)] == 1
    assert got[("roomctl_board_sse_clients", site)] >= 0
    check_labels(board.board.metrics.registry)


def test_board_healthz_names_each_duty(board: BoardServer) -> None:
    with urllib.request.urlopen(board.url + "/healthz", timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["ok"] and doc["broker_connected"]
    assert doc["checks"] == {"broker": "ok", "board_database": "ok", "logger_database": "ok"}
    board.board.users.conn.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        ok, doc = board_health(board.board).report()
    finally:
        board.board.users.conn.execute("ROLLBACK")
    assert not ok
    assert doc["checks"]["board_database"].startswith("board database not writable")


def test_sse_clients_are_counted(board: BoardServer) -> None:
    def clients() -> float:
        return scrape(board.url)[("roomctl_board_sse_clients", (("site", SITE),))]

    assert clients() == 0
    sub = board.board.hub.subscribe()  # what /api/stream does for each browser
    try:
        assert clients() == 1
    finally:
        board.board.hub.unsubscribe(sub)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(board.url + "/api/stream", timeout=10)  # a stream needs a login
    refused.value.close()


def test_roomctl_board_speaks_to_systemd(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """`Type=notify` + `WatchdogSec` (the central role's unit): READY once serving, WATCHDOG
    while its loop runs and its database takes a write, STOPPING on the way out."""
    import signal

    from broker.mosquitto.run import free_port

    with notified_service(
        tmp_path, "board", "--broker", mosquitto.url, "--site", "s1",
        "--db", str(tmp_path / "log.db"), "--port", str(free_port()),
    ) as svc:
        svc.until("WATCHDOG=1", 3)
        assert svc.got[0].startswith("READY=1")
        # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught (systemd counts
        # a stop by SIGTERM as clean)
        assert svc.stop() in (0, -signal.SIGTERM)
