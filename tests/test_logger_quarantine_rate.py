"""The quarantine is rate-limited per room (issue 13): one room's flood of bad messages is
counted, not stored, past its rate, and the other rooms' rejections and good messages are
written as before. The limiter with an injected clock; the store; the logger's own commit path;
and a real Mosquitto + logger with two rooms."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from broker.logger.config import LoggerConfig
from broker.logger.ingest import RateLimited, Rejected
from broker.logger.quarantine_rate import QuarantineRateLimiter
from broker.logger.service import Inbound, Logger
from broker.logger.store import open_store
from broker.logger.store.sqlite import SqliteLogStore
from contract import topics
from contract.mqtt import close_client
from tests.support.clinic import Clinic, open_session, running_logger
from tests.support.clinic_rooms import db_count, poll, vitals
from tests.support.logger_store import RX, SITE, q


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_room_has_its_own_bucket_refilled_at_the_rate() -> None:
    clock = Clock()
    limiter = QuarantineRateLimiter(rate_per_s=2.0, burst=5, clock=clock)
    a, b = (SITE, "101"), (SITE, "102")
    assert [limiter.allow(a) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limiter.allow(b)  # the other room is untouched by 101's flood
    clock.now += 1.0
    assert [limiter.allow(a) for _ in range(3)] == [True, True, False]
    clock.now += 3600.0
    assert sum(limiter.allow(a) for _ in range(10)) == 5  # never more than the burst


def test_only_rejections_are_limited() -> None:
    limiter = QuarantineRateLimiter(rate_per_s=1.0, burst=1, clock=Clock())
    topic = topics.events(SITE, "101")
    bad = Rejected(topic, "invalid JSON", b"{", 1)
    assert limiter.apply(bad) is bad
    assert limiter.apply(bad) == RateLimited(topic, 1)


def test_a_rate_limited_rejection_is_counted_as_dropped_and_stores_no_row(
    store: SqliteLogStore,
) -> None:
    topic = topics.events(SITE, "101")
    items = [(Rejected(topic, "invalid JSON", b"{", 1), RX)] * 3
    items += [(RateLimited(topic, 40_000), RX)] * 97
    stats = store.write_batch(items)
    assert (stats.quarantined, stats.rate_limited) == (3, 97)
    assert q(store, "SELECT COUNT(*) FROM quarantine") == [(3,)]
    (usage,) = store.quarantine_usage()
    assert (usage["rows"], usage["dropped"]) == (3, 97)
    assert store.counts(SITE).quarantine_dropped == 97


def test_the_loggers_commit_path_limits_the_flooding_room_only(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    cfg = LoggerConfig(db=db, site=SITE, broker="mqtt://127.0.0.1:1", quarantine_burst_per_room=50)
    logger = Logger(cfg)
    store = open_store(db)
    try:
        flood = [
            Inbound(topics.events(SITE, "101"), b"{junk" + bytes(30_000), n, 1, 0, 0.0)
            for n in range(1000)
        ]
        quiet_bad = [
            Inbound(topics.events(SITE, "102"), b"{", 2000 + n, 1, 0, 0.0) for n in range(5)
        ]
        good = [
            Inbound(topics.vitals(SITE, "102"), vitals(SITE, "102", n).model_dump_json().encode(),
                    3000 + n, 1, 0, 0.0)
            for n in range(1, 101)
        ]  # fmt: skip
        assert logger._commit(store, flood[:500] + quiet_bad + good + flood[500:])
    finally:
        store.close()
        close_client(logger.client)
    totals = logger.totals
    assert totals.inserted == 100  # every good message of room 102
    assert totals.quarantined + totals.rate_limited == 1005  # every rejection accounted for
    check = open_store(db)
    try:
        usage = {(r["site"], r["room"]): r for r in check.quarantine_usage()}
    finally:
        check.close()
    assert usage[(SITE, "102")]["rows"] == 5  # the quiet room's rejections all kept
    assert usage[(SITE, "101")]["rows"] < 100  # burst 50 (+ what refilled meanwhile)
    assert usage[(SITE, "101")]["rows"] + usage[(SITE, "101")]["dropped"] == 1000


@pytest.mark.broker
def test_one_rooms_flood_through_the_broker_does_not_starve_the_other(
    tmp_path: Path,
) -> None:
    with Clinic(tmp_path / "clinic", rooms=("101", "102")) as clinic:
        db = tmp_path / "log.db"
        with running_logger(clinic.logger_config(db, quarantine_burst_per_room=20)) as logger:
            assert logger.subscribed.wait(10)
            flooder = open_session(clinic.endpoint("room-101"))
            quiet = open_session(clinic.endpoint("room-102"))
            stop = threading.Event()

            def flood() -> None:
                for _ in range(3000):  # bounded
                    if stop.is_set():
                        return
                    flooder.client.publish(topics.events(SITE, "101"), b"{" * 20_000, qos=0)

            thread = threading.Thread(target=flood)
            try:
                thread.start()
                for n in range(1, 201):
                    quiet.client.publish(
                        topics.vitals(SITE, "102"),
                        vitals(SITE, "102", n).model_dump_json(),
                        qos=1,
                    )
                poll(lambda: db_count(db) >= 200, 60, "room 102's 200 vitals stored")
                thread.join(60)
            finally:
                stop.set()
                thread.join(10)
                flooder.stop()
                quiet.stop()
            poll(
                lambda: logger.totals.quarantined + logger.totals.rate_limited >= 100,
                30,
                "the flood reached the logger",
            )
            assert logger.totals.rate_limited > 0
            assert logger.totals.quarantined < logger.totals.rate_limited
