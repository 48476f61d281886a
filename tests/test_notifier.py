"""`roomctl notify` (issue 15): calls routed by tier to local HTTP receivers on loopback (one
accepts, one fails for a while, one hangs), with a real Mosquitto and the notifier as a real
process; every attempt stored; no second page after a SIGKILL (for a page it has recorded as
delivered; one in flight at the kill is sent again with the same delivery id)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.mosquitto.run import Mosquitto, free_port
from broker.notifier.channels import signature
from broker.notifier.routing import Roster, recipients
from broker.notifier.store import DeliveryStore
from contract import sitetime, topics
from contract.staff import ShiftAssignments
from tests.support.board import SITE, FakeRoom
from tests.support.mqtt import Recorder, wait_until
from tests.support.notifier import SECRET, notifier_config, start_notifier
from tests.support.receivers import Receiver
from tests.support.sdnotify import notified_service

pytestmark = pytest.mark.broker


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        yield rec


def _pages(rx: Receiver) -> set[tuple[str, int, str]]:
    return {(r.json()["call_id"], r.json()["tier"], r.json()["to"]) for r in rx.got()}


def _wait_pages(rx: Receiver, want: set[tuple[str, int, str]]) -> None:
    wait_until(lambda: want <= _pages(rx), 30, f"pages {sorted(want)}")


ROSTER = Roster(on_shift=["nina", "omar", "carol"], charge_nurse="carol",
                assignments={"101": "nina", "104": "paul"})  # fmt: skip


@pytest.mark.parametrize(
    ("room", "tier", "emergency", "who"),
    [
        ("101", 1, False, ["nina"]),  # the assigned nurse
        ("102", 1, False, ["nina", "omar", "carol"]),  # nobody assigned: everyone on shift
        ("104", 1, False, ["nina", "omar", "carol"]),  # assigned nurse off shift
        ("101", 2, False, ["nina", "omar", "carol"]),
        ("101", 3, False, ["carol"]),
        ("101", 1, True, ["nina", "omar", "carol"]),  # emergencies: everyone at once
    ],
)
def test_routing_table(room: str, tier: int, emergency: bool, who: list[str]) -> None:
    assert recipients(room, tier, emergency, ROSTER) == who


def test_routes_by_tier_signs_webhooks_and_retries_a_failing_push(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    with Receiver() as hook, Receiver(fail_first=3) as push:
        config = notifier_config(tmp_path, hook.url, push.url)
        proc = start_notifier(mosquitto.url, config)
        try:
            room = FakeRoom(recorder, "101")
            room.online()
            room.state("infusion")
            at = room.env()["ts"]
            call = {"call_id": "c-101", "priority": "infusion", "type": "normal", "placed_at": at}
            room.call("placed", tier=1, **call)
            _wait_pages(hook, {("c-101", 1, "nina")})
            room.call("escalated", tier=2, escalated_at=at, **call)
            _wait_pages(hook, {("c-101", 2, n) for n in ("nina", "omar", "carol")})
            room.call("escalated", tier=3, escalated_at=at, **call)
            _wait_pages(hook, {("c-101", 3, "carol")})
            other = FakeRoom(recorder, "102")
            other.call("placed", call_id="c-102", priority="emergency", type="emergency",
                       placed_at=at)  # fmt: skip
            _wait_pages(hook, {("c-102", 1, n) for n in ("nina", "omar", "carol")})
            # the pusher fails its first three requests: retried until each nurse has hers
            wait_until(
                lambda: {"/roomctl-nina", "/roomctl-omar", "/roomctl-carol"}
                <= {r.path for r in push.got()},
                30,
                "every push delivered",
            )
            store = DeliveryStore(tmp_path / "notifier.sqlite")
            wait_until(
                lambda: all(d["status"] == "delivered" for d in store.deliveries()),
                30,
                "every delivery made",
            )
        finally:
            proc.stop()
        assert ("c-101", 1, "omar") not in _pages(hook)  # tier 1 is the assigned nurse's
        assert all(p[2] != "paul" for p in _pages(hook))  # off shift: never paged
        for r in hook.got():
            ts = r.headers["X-Roomctl-Timestamp"]
            assert r.headers["X-Roomctl-Signature"] == signature(SECRET.encode(), ts, r.body)
            assert r.headers["X-Roomctl-Delivery"] == (
                f"{r.json()['call_id']}|{r.json()['tier']}|{r.json()['to']}|webhook"
            )
        # the time the call was placed, on the site's clock (New York), zone named
        placed = sitetime.hm(at, sitetime.site_zone("America/New_York"))
        assert push.got()[0].body.decode() == f"Room 101: CALL, placed {placed}"
        assert placed.endswith((" EST", " EDT"))
        assert {r.headers["Priority"] for r in push.got() if "c-102" in r.headers.get(
            "X-Roomctl-Delivery", "")} == {"5"}  # fmt: skip
        failed = [a for d in store.deliveries() if d["channel"] == "ntfy"
                  for a in store.attempts(str(d["key"])) if not a[1]]  # fmt: skip
        assert len(failed) == 3 and all(a[2] == "HTTP 503" for a in failed)
        assert len(store.deliveries()) == 2 * (1 + 3 + 1 + 3)  # webhook and push each
        store.close()
        reports = [json.loads(m.payload) for m in recorder.messages
                   if m.topic.startswith(f"clinic/{SITE}/room/")
                   and m.topic.endswith("/page/main")]  # fmt: skip
        assert any(not r["ok"] and r["detail"] == "HTTP 503" for r in reports)
        assert any(r["ok"] and r["recipient"] == "carol" and r["tier"] == 3 for r in reports)


def test_a_hanging_receiver_holds_up_no_other_page(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    with Receiver(mode="hang") as hook, Receiver() as push:
        config = notifier_config(tmp_path, hook.url, push.url, timeout_s=0.5)
        ops_port = free_port()
        proc = start_notifier(mosquitto.url, config, ops_port=ops_port)
        try:
            room = FakeRoom(recorder, "101")
            room.call("placed", call_id="c-1", priority="normal", type="normal", tier=1,
                      placed_at=room.env()["ts"])  # fmt: skip
            push.wait_count(1)
            assert push.got()[0].path == "/roomctl-nina"
            hook.wait_count(2)  # timed out, and tried again
            store = DeliveryStore(tmp_path / "notifier.sqlite")
            key = "c-1|1|nina|webhook"
            wait_until(lambda: len(store.attempts(key)) >= 2, 30, "two webhook attempts")
            assert all(not ok and detail == "timed out" for _, ok, detail in store.attempts(key))
            store.close()
            # its metrics (docs/OPERATIONS.md): the push delivered, the webhook's attempts failed
            with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            assert 'roomctl_notifications_sent_total{priority="normal",site="test"} 1.0' in metrics
            pattern = r'roomctl_notifications_failed_total\{priority="normal",site="test"\} (\S+)'
            failed = re.search(pattern, metrics)
            assert failed is not None and float(failed.group(1)) >= 2
            with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/healthz", timeout=10) as r:
                assert json.loads(r.read())["checks"] == {"broker": "ok"}
        finally:
            proc.stop()


def test_no_second_page_after_a_sigkill(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    with Receiver() as hook:
        config = notifier_config(tmp_path, hook.url, None)
        proc = start_notifier(mosquitto.url, config)
        room = FakeRoom(recorder, "101")
        try:
            room.call("placed", call_id="c-1", priority="normal", type="normal", tier=1,
                      placed_at=room.env()["ts"])  # fmt: skip
            hook.wait_count(1)
            store = DeliveryStore(tmp_path / "notifier.sqlite")
            wait_until(
                lambda: [d["status"] for d in store.deliveries()] == ["delivered"], 30, "recorded"
            )
            store.close()
        finally:
            proc.proc.kill()  # SIGKILL: no goodbye, no flush
            proc.stop()
        again = start_notifier(mosquitto.url, config)
        try:
            # the retained call comes back to the new process; a later call in another room
            # (handled after it, in order) proves it has been seen
            later = FakeRoom(recorder, "105")
            later.call("placed", call_id="c-2", priority="normal", type="normal", tier=1,
                       placed_at=later.env()["ts"])  # fmt: skip
            _wait_pages(hook, {("c-2", 1, "nina")})
        finally:
            again.stop()
        assert [(r.json()["call_id"], r.json()["to"]) for r in hook.got()].count(
            ("c-1", "nina")
        ) == 1


def test_the_boards_assignments_win_over_the_file(
    mosquitto: Mosquitto, recorder: Recorder, tmp_path: Path
) -> None:
    with Receiver() as hook:
        proc = start_notifier(mosquitto.url, notifier_config(tmp_path, hook.url, None))
        try:
            room = FakeRoom(recorder, "101")
            # the charge nurse gave room 101 to omar on the board (the file says nina)
            shift = ShiftAssignments(by="carol", at=datetime.now(UTC), rooms={"101": "omar"})
            recorder.publish(topics.assignments(SITE, "board"), shift.model_dump_json(),
                             retain=True)  # fmt: skip
            # someone else's table is not believed
            other = ShiftAssignments(by="x", at=datetime.now(UTC), rooms={"101": "paul"})
            recorder.publish(topics.assignments(SITE, "ana"), other.model_dump_json(),
                             retain=True)  # fmt: skip
            room.call("placed", call_id="c-1", priority="normal", type="normal", tier=1,
                      placed_at=room.env()["ts"])  # fmt: skip
            _wait_pages(hook, {("c-1", 1, "omar")})
        finally:
            proc.stop()
        assert _pages(hook) == {("c-1", 1, "omar")}


def test_roomctl_notify_speaks_to_systemd(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The central role's unit is `Type=notify` + `WatchdogSec`: READY once subscribed,
    WATCHDOG while the routing loop turns, STOPPING on SIGTERM."""
    # a receiver that is never asked: no call is placed in this test
    config = notifier_config(tmp_path, f"http://127.0.0.1:{free_port()}", None)
    with notified_service(
        tmp_path, "notify", "--broker", mosquitto.url, "--site", SITE, "--config", str(config),
        cwd=tmp_path,
    ) as svc:
        svc.until("WATCHDOG=1", 3)
        assert svc.got[0].startswith("READY=1")
        assert svc.stop() == 0


def test_a_bad_site_time_zone_is_refused_naming_the_field(tmp_path: Path) -> None:
    from broker.notifier.config import ConfigError, load

    good = load(notifier_config(tmp_path, "http://127.0.0.1:9/x", None, timezone="Europe/Berlin"))
    assert good.timezone == "Europe/Berlin"
    bad = notifier_config(tmp_path, "http://127.0.0.1:9/x", None, timezone="Europe/Atlantis")
    with pytest.raises(ConfigError) as refused:
        load(bad)
    message = str(refused.value)
    assert message.startswith(f"{bad}: timezone: 'Europe/Atlantis' is not a time zone: use an")
    assert "Value error" not in message
