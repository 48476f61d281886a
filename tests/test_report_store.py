"""The store reads behind the manager's reports (`LogStore.report_rows`), on SQLite and on
PostgreSQL: the scripted day of tests/support/report_day.py written as the logger writes it,
read back per kind, and the figures the pure modules make of it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from broker.board.call_stats import call_records, day_bounds, report
from broker.board.room_reliability import reliability
from broker.logger.store import LogStore
from broker.logger.store.report_sql import REPORT_KINDS, report_query
from contract.timefmt import format_ts
from tests.support.logger_store import open_like
from tests.support.report_day import DAY, SITE, at, call_rows, day_batch


def test_report_rows_of_the_scripted_day(store: LogStore, tmp_path: Path) -> None:
    store.write_batch(day_batch())
    reader = open_like(store, tmp_path, readonly=True)  # as the board reads it
    start, end = day_bounds(date(2026, 11, 3), date(2026, 11, 3))
    since, until = format_ts(start), format_ts(end)
    try:
        rows = reader.report_rows("call_events", SITE, since, format_ts(end + timedelta(days=1)))
        # every call and presence event from the day's start (c0's cancel included: the
        # report ignores it), oldest first, detail decoded: what the pure test reads
        assert rows == [r for r in call_rows() if r["ts"] >= since]
        assert report(call_records(rows)).total.answered == 6
        kinds = [
            (r["room"], r["kind"]) for r in reader.report_rows("room_events", SITE, since, until)
        ]
        assert kinds == [("101", "daemon_started"), *[("104", k) for k in (
            "monitor_link_lost", "monitor_link_restored") * 2]]  # fmt: skip
        before = reader.report_rows("availability_before", SITE, since, until)
        assert [(r["room"], r["status"]) for r in before] == [("101", "online"), ("102", "offline")]
        during = reader.report_rows("availability", SITE, since, until)
        assert [(r["room"], r["status"], r["received_at"]) for r in during] == [
            ("102", "online", format_ts(at("00:30:00"))),
            ("101", "offline", format_ts(at("10:00:00"))),
            ("101", "online", format_ts(at("10:08:00"))),
            ("101", "offline", format_ts(at("22:00:00"))),
        ]
        backlog = reader.report_rows("backlog", SITE, since, until)  # empty outboxes left out
        assert [(r["room"], r["ts"], r["depth"], r["oldest_age_s"]) for r in backlog] == [
            ("101", format_ts(at("10:08:05")), 12, 95.5),
            ("101", format_ts(at("10:08:10")), 3, 1.0),
        ]
        quarantine = reader.report_rows("quarantine", SITE, since, until)
        assert [r["room"] for r in quarantine] == ["103", "103"]
        assert all(r["reason"] for r in quarantine)
        got = {
            kind: reader.report_rows(kind, SITE, since, until)
            for kind in ("availability", "availability_before", "room_events", "backlog",
                         "quarantine")
        }  # fmt: skip
        rooms = {r.room: r for r in reliability(start, end, DAY + timedelta(days=2), **got)}
        assert (rooms["101"].offline_s, rooms["101"].backlog_peak) == (7680.0, 12)
        assert rooms["102"].offline_s == 1800.0 and rooms["104"].monitor_lost_s == 330.0
        assert rooms["103"].quarantined == 2
        # another site, or another day, has none of it
        assert reader.report_rows("call_events", "other", since, until) == []
        day_after = format_ts(end + timedelta(days=1))
        assert reader.report_rows("availability", SITE, format_ts(end), day_after) == []
    finally:
        reader.close()


def test_report_kinds_are_checked(store: LogStore) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        store.report_rows("vitals; DROP TABLE calls", SITE, "", "")
    with pytest.raises(ValueError, match="dialect"):
        report_query("backlog", "mysql", SITE, "", "")
    for kind in REPORT_KINDS:  # every kind answers on an empty store
        assert store.report_rows(kind, SITE, "2026-01-01", "2027-01-01") == []
