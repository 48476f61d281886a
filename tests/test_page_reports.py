"""The notifier's page reports (issue 15): every attempt to page someone about a call, and its
result, published on the room's `page/<notifier>`, only by that notifier (real Mosquitto ACL),
carried in by site bridges, stored once by the logger (SQLite and PostgreSQL; malformed or
mismatched reports quarantined) and shown in the room page's timeline (real Chromium), with a
real notifier process paging loopback HTTP receivers (one accepts, one fails for a while)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from broker.board.call_proof import page_text
from broker.logger.config import LoggerConfig
from broker.logger.ingest import PageReport, Rejected, classify
from broker.logger.store import LogStore, open_store
from broker.mosquitto.run import Mosquitto
from contract import topics
from contract.staff import DeliveryReport
from tests.support.board import SITE, BoardServer, FakeRoom, login
from tests.support.clinic import Clinic, open_session, running_logger
from tests.support.logger_store import SITE as STORE_SITE
from tests.support.logger_store import put, q
from tests.support.mqtt import Recorder, wait_until
from tests.support.notifier import notifier_config, start_notifier
from tests.support.receivers import Receiver

WAIT_MS = 20_000
NOT_AUTHORIZED = 0x87


def _report(**over: object) -> DeliveryReport:
    fields: dict[str, object] = {
        "room": "101", "call_id": "c1", "tier": 1, "recipient": "nina", "channel": "ntfy",
        "attempt": 1, "ok": False, "detail": "HTTP 503", "status": "pending",
        "at": datetime(2026, 1, 1, 8, 0, 1, tzinfo=UTC),
    }  # fmt: skip
    fields.update(over)
    return DeliveryReport.model_validate(fields)


def test_a_page_report_is_classified_with_its_notifier() -> None:
    topic = topics.page("s1", "101", "main")
    assert topic == "clinic/s1/room/101/page/main"
    got = classify(topic, _report().model_dump_json().encode(), "s1", 65536)
    assert isinstance(got, PageReport) and (got.room, got.notifier) == ("101", "main")
    assert topics.parse_room_topic(topic) == topics.ParsedTopic("s1", "101", "page", "main")
    assert topics.parse_room_topic("clinic/s1/room/101/page/Bad!") is None


@pytest.mark.parametrize(
    ("payload", "retain", "reason"),
    [
        (b"{not json", False, "invalid JSON"),
        (json.dumps({"room": "101"}).encode(), False, "call_id"),
        (_report(room="102").model_dump_json().encode(), False, "topic/payload mismatch"),
        (_report().model_dump_json().encode(), True, "retained message on a non-retained"),
    ],
)
def test_a_bad_page_report_is_refused_with_a_reason(
    payload: bytes, retain: bool, reason: str
) -> None:
    got = classify(topics.page("s1", "101", "main"), payload, "s1", 65536, retain=retain)
    assert isinstance(got, Rejected) and reason in got.reason


def test_page_reports_are_stored_once_and_read_back_in_order(store: LogStore) -> None:
    topic = topics.page(STORE_SITE, "101", "main")
    first = _report()
    second = _report(attempt=2, ok=True, detail="HTTP 200", status="delivered",
                     at=datetime(2026, 1, 1, 8, 0, 3, tzinfo=UTC))  # fmt: skip
    for report in (second, first, first, second):  # QoS 1 redelivery, a second logger
        put(store, topic, report.model_dump_json())
    put(store, topics.page(STORE_SITE, "101", "spare"), first.model_dump_json())  # another one
    put(store, topic, _report(room="102").model_dump_json())  # names another room
    rows = store.pages(STORE_SITE, "101", "2026-01-01T00:00:00.000Z")
    assert [(r["notifier"], r["attempt"], r["ok"], r["status"]) for r in rows] == [
        ("main", 1, False, "pending"), ("spare", 1, False, "pending"),
        ("main", 2, True, "delivered"),
    ]  # fmt: skip
    assert rows[0]["at"] == "2026-01-01T08:00:01.000Z" and rows[0]["detail"] == "HTTP 503"
    assert store.pages(STORE_SITE, "101", "2026-01-01T08:00:02.000Z")[0]["attempt"] == 2
    assert store.pages(STORE_SITE, "102", "2026-01-01T00:00:00.000Z") == []
    assert [r[0] for r in q(store, "SELECT reason FROM quarantine")] == [
        "topic/payload mismatch: topic is room '101', report says room '102'"
    ]
    assert page_text(rows[0]) == "paged nina (ntfy) · call c1 tier 1 · failed: HTTP 503, retry 2"
    assert page_text(rows[2]) == "paged nina (ntfy) · call c1 tier 1 · delivered at attempt 2"
    assert page_text({**rows[0], "status": "failed"}).endswith("gave up after 1 attempts")


@pytest.mark.broker
def test_only_the_notifier_writes_its_page_reports(tmp_path: Path) -> None:
    payload = _report().model_dump_json()
    with Clinic(tmp_path, staff=("alice",), notifiers=("main",)) as clinic:
        cases = [
            ("notifier-main", topics.page("s1", "101", "main"), True),
            ("notifier-main", topics.page("s1", "101", "other"), False),  # not its name
            ("staff-alice", topics.page("s1", "101", "alice"), False),  # staff page nobody
            ("room-101", topics.page("s1", "101", "main"), False),  # nor does the room
            ("room-101", topics.page("s1", "101", "room-101"), False),
        ]
        for who, topic, allowed in cases:
            sess = open_session(clinic.endpoint(who))
            try:
                rc = sess.publish(topic, payload)
            finally:
                sess.stop()
            assert (not rc.is_failure) is allowed, (who, topic, rc)
            assert rc.is_failure is (rc.value == NOT_AUTHORIZED)


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        yield rec


@pytest.mark.broker
def test_every_page_attempt_is_stored_by_the_logger_and_shown_in_the_room_timeline(
    mosquitto: Mosquitto, recorder: Recorder, page: Page, tmp_path: Path
) -> None:
    db = tmp_path / "log.sqlite"
    config = LoggerConfig.model_validate({"broker": mosquitto.url, "db": db, "site": SITE})
    board = BoardServer(mosquitto.url, tmp_path, logger_db=db).start()
    try:
        with (
            running_logger(config),
            Receiver() as hook,
            Receiver(fail_first=2) as push,
        ):
            proc = start_notifier(mosquitto.url, notifier_config(tmp_path, hook.url, push.url))
            try:
                room = FakeRoom(recorder, "101")
                room.online()
                room.state("infusion")
                room.call("placed", call_id="c-101", priority="infusion", type="normal",
                          tier=1, placed_at=room.env()["ts"])  # fmt: skip
                reports = lambda: [  # noqa: E731
                    m.json() for m in recorder.messages if m.topic.endswith("/page/main")
                ]
                # the board's (empty) assignments leave room 101 to every nurse on shift
                # (nina, omar, carol), each by webhook and push; the pusher fails twice
                delivered = lambda: {  # noqa: E731
                    (r["recipient"], r["channel"]) for r in reports() if r["ok"]
                }
                wait_until(lambda: len(delivered()) == 6, 30, "every page delivered")
            finally:
                proc.stop()
            sent = reports()
            assert sum(not r["ok"] for r in sent) == 2 and len(sent) == 8
            reader = open_store(db, readonly=True)
            try:
                wait_until(
                    lambda: len(reader.pages(SITE, "101", "2000-01-01T00:00:00.000Z")) == 8,
                    30,
                    "every page attempt stored",
                )
                stored = reader.pages(SITE, "101", "2000-01-01T00:00:00.000Z")
            finally:
                reader.close()
            key = ("channel", "attempt", "ok", "status", "detail", "at")
            assert sorted(tuple(r[k] for k in key) for r in stored) == sorted(
                tuple(r[k] for k in key) for r in sent
            )
            assert {r["notifier"] for r in stored} == {"main"}

            login(page, board.url, "alice")
            page.goto(f"{board.url}/rooms/101")
            timeline = page.locator("#timeline li[data-kind='page']")
            expect(timeline).to_have_count(8, timeout=WAIT_MS)
            text = page.locator("#timeline").inner_text()
            for who in ("nina", "omar", "carol"):
                assert f"paged {who} (webhook) · call c-101 tier 1 · delivered" in text
            failed = [r for r in sent if not r["ok"]]
            for r in failed:  # each failed attempt, and the retry that took it
                head = f"paged {r['recipient']} ({r['channel']}) · call c-101 tier 1"
                assert f"{head} · failed: HTTP 503, retry {r['attempt'] + 1}" in text
                assert f"{head} · delivered at attempt {r['attempt'] + 1}" in text
    finally:
        board.stop()
