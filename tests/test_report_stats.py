"""The manager's reports, pure (issue 20): the scripted day of tests/support/report_day.py
through `call_stats` and `room_reliability`, every figure worked out by hand below."""

from __future__ import annotations

import io
from datetime import date, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker.board.call_stats import (
    DEFAULT_SHIFTS,
    CallRecord,
    ResponseStats,
    Shift,
    call_records,
    day_bounds,
    nearest_rank,
    parse_shifts,
    report,
    shift_of,
)
from broker.board.report_pages import csv_response
from broker.board.room_reliability import reliability
from broker.board.users import BoardDB
from contract.timefmt import format_ts
from controller.cli import main as roomctl
from tests.support.report_day import AVAILABILITY, DAY, HEALTH, at, call_rows

NEW_YORK = ZoneInfo("America/New_York")


def stats(key: str, calls: int, answered: int, *times: float | None) -> ResponseStats:
    median, p90, longest = times if times else (None, None, None)
    return ResponseStats(key, calls, answered, median, p90, longest)


def call_rows_records() -> list[CallRecord]:
    return call_records(call_rows())


def test_every_call_is_folded_with_its_first_answer() -> None:
    records = {r.call_id: r for r in call_rows_records()}
    assert sorted(records) == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]  # c0: placed before
    got = {k: (r.response_s, r.response[1] if r.response else None, r.nurse, r.priority,
               r.call_type) for k, r in records.items()}  # fmt: skip
    assert got == {
        "c1": (30.0, "claim", "alice", "normal", "normal"),
        "c2": (60.0, "presence", "(in the room)", "high", "bath"),
        "c3": (180.0, "claim", "bob", "normal", "normal"),
        "c4": (40.0, "presence", "alice", "emergency", "emergency"),  # raised, then present
        "c5": (20.0, "cancel", "(in the room)", "normal", "normal"),
        "c6": (None, None, "(unanswered)", "trouble", "cord_out"),
        "c7": (90.0, "claim", "bob", "high", "assist"),
    }
    assert records["c3"].escalated and not records["c1"].escalated


def test_the_scripted_day_in_utc() -> None:
    rep = report(call_rows_records())
    # answered responses, sorted: 20 30 40 60 90 180; median = rank ceil(3) = 40,
    # p90 = rank ceil(5.4) = 6th = 180
    assert rep.total == stats("all calls", 7, 6, 40, 180, 180)
    assert rep.how == {"claim": 3, "presence": 2, "cancel": 1, "unanswered": 1}
    assert rep.tables["priority"] == [  # most urgent first
        stats("emergency", 1, 1, 40, 40, 40),
        stats("high", 2, 2, 60, 90, 90),  # 60 90: median rank 1, p90 rank 2
        stats("normal", 3, 3, 30, 180, 180),  # 20 30 180
        stats("trouble", 1, 0),
    ]
    assert rep.tables["type"] == [
        stats("assist", 1, 1, 90, 90, 90),
        stats("bath", 1, 1, 60, 60, 60),
        stats("cord_out", 1, 0),
        stats("emergency", 1, 1, 40, 40, 40),
        stats("normal", 3, 3, 30, 180, 180),
    ]
    assert rep.tables["shift_day"] == [
        stats("2026-11-03 day", 4, 4, 40, 180, 180),  # c1-c4: 30 40 60 180
        stats("2026-11-03 night", 3, 2, 20, 90, 90),  # c5-c7: 20 90
    ]
    assert rep.tables["shift"] == [  # one day: the same, named by shift
        stats("day", 4, 4, 40, 180, 180),
        stats("night", 3, 2, 20, 90, 90),
    ]
    assert rep.tables["room"] == [
        stats("101", 3, 3, 90, 180, 180),  # 30 90 180
        stats("102", 2, 2, 20, 60, 60),
        stats("103", 2, 1, 40, 40, 40),
    ]
    assert rep.tables["nurse"] == [
        stats("alice", 2, 2, 30, 40, 40),
        stats("bob", 2, 2, 90, 180, 180),
        stats("(in the room)", 2, 2, 20, 60, 60),
        stats("(unanswered)", 1, 0),
    ]


def test_shifts_are_read_in_the_site_zone() -> None:
    """New York is UTC-5 on 3 November (the clocks went back on the 1st): c1-c4 (08:00-11:00
    UTC) fall in the night shift that began on 2 November, c5-c7 (15:00-18:30 local) in the
    day shift of 3 November."""
    rep = report(call_rows_records(), DEFAULT_SHIFTS, NEW_YORK)
    assert rep.tables["shift_day"] == [
        stats("2026-11-02 night", 4, 4, 40, 180, 180),
        stats("2026-11-03 day", 3, 2, 20, 90, 90),
    ]
    assert rep.tables["shift"] == [  # in the order of the setting: day first
        stats("day", 3, 2, 20, 90, 90),
        stats("night", 4, 4, 40, 180, 180),
    ]
    three = parse_shifts("early=06:00-14:00,late=14:00-22:00,night=22:00-06:00")
    assert shift_of(at("02:00:00"), three, NEW_YORK) == "2026-11-02 late"  # 21:00 local
    assert shift_of(at("04:00:00"), three, NEW_YORK) == "2026-11-02 night"  # 23:00 local
    assert shift_of(at("10:00:00"), three, NEW_YORK) == "2026-11-02 night"  # 05:00, began before
    assert shift_of(at("12:00:00"), three, NEW_YORK) == "2026-11-03 early"


def test_local_days_and_clock_changes() -> None:
    start, end = day_bounds(date(2026, 11, 3), date(2026, 11, 3))
    assert (format_ts(start), format_ts(end)) == (
        "2026-11-03T00:00:00.000Z", "2026-11-04T00:00:00.000Z")  # fmt: skip
    start, end = day_bounds(date(2026, 11, 3), date(2026, 11, 4), NEW_YORK)
    assert format_ts(start) == "2026-11-03T05:00:00.000Z" and end - start == timedelta(days=2)
    start, end = day_bounds(date(2026, 3, 8), date(2026, 3, 8), NEW_YORK)  # spring forward
    assert end - start == timedelta(hours=23)
    with pytest.raises(ValueError, match="before from"):
        day_bounds(date(2026, 11, 4), date(2026, 11, 3))


def test_shift_settings_are_checked() -> None:
    assert parse_shifts("day=07:00-19:00,night=19:00-07:00") == DEFAULT_SHIFTS
    assert DEFAULT_SHIFTS[1] == Shift("night", time(19), time(7))
    with pytest.raises(ValueError, match="no shift at 00:00"):
        parse_shifts("day=07:00-19:00")
    with pytest.raises(ValueError, match="overlap at 18:00"):
        parse_shifts("day=07:00-19:00,night=18:00-07:00")
    with pytest.raises(ValueError, match="'day=7-19x'"):
        parse_shifts("day=7-19x,night=19:00-07:00")


def test_nearest_rank() -> None:
    assert nearest_rank([], 90) is None
    assert nearest_rank([5.0], 90) == 5.0
    values = [float(v) for v in range(1, 11)]  # 1..10: p90 = rank 9, median = rank 5
    assert (nearest_rank(values, 90), nearest_rank(values, 50)) == (9.0, 5.0)


def test_room_reliability_of_the_scripted_history() -> None:
    start, end = day_bounds(date(2026, 11, 3), date(2026, 11, 3))
    before = [
        {"room": r, "status": s, "received_at": format_ts(t)} for r, t, s in AVAILABILITY
        if t < start
    ]  # fmt: skip
    during = [
        {"room": r, "status": s, "received_at": format_ts(t)} for r, t, s in AVAILABILITY
        if t >= start
    ]  # fmt: skip
    events = [
        {"room": "101", "kind": "daemon_started", "ts": format_ts(at("10:08:00"))},
        *({"room": "104", "kind": k, "ts": format_ts(at(t))} for k, t in (
            ("monitor_link_lost", "13:00:00"), ("monitor_link_restored", "13:05:00"),
            ("monitor_link_lost", "14:00:00"), ("monitor_link_restored", "14:00:30"))),
    ]  # fmt: skip
    backlog = [
        {"room": r, "ts": format_ts(at(t)), "depth": d, "oldest_age_s": o}
        for r, _, t, d, o in HEALTH if d > 0
    ]  # fmt: skip
    quarantine = [{"room": "103", "received_at": format_ts(at("15:00:00")), "reason": "bad"}] * 2
    later = DAY + timedelta(days=3)
    rooms = {r.room: r for r in reliability(start, end, later, during, before, events, backlog,
                                            quarantine)}  # fmt: skip
    assert sorted(rooms) == ["101", "102", "103", "104"]
    r101, r102, r103, r104 = (rooms[k] for k in ("101", "102", "103", "104"))
    assert [(p.seconds, p.open) for p in r101.offline] == [(480.0, False), (7200.0, True)]
    assert r101.offline_s == 7680.0 and r101.restarts == 1
    assert (r101.backlog_peak, r101.backlog_peak_at, r101.backlog_oldest_s) == (
        12, at("10:08:05"), 95.5)  # fmt: skip
    assert [(p.start, p.seconds) for p in r102.offline] == [(start, 1800.0)]
    assert (r103.quarantined, r103.quarantine_reason, r103.offline) == (2, "bad", [])
    assert [p.seconds for p in r104.monitor_lost] == [300.0, 30.0]
    # asked at 23:00 the same day: 101's open period ends now, not at midnight
    rooms = {r.room: r for r in reliability(start, end, at("23:00:00"), during, before)}
    assert [(p.seconds, p.open) for p in rooms["101"].offline] == [(480.0, False), (3600.0, True)]


def test_roomctl_board_refuses_bad_shifts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = roomctl([
        "board", "--broker", "mqtt://127.0.0.1:1", "--site", "s1", "--db", str(tmp_path / "l.db"),
        "--shifts", "day=07:00-19:00,night=19:00-06:00",
    ])  # fmt: skip
    assert code != 0
    assert "roomctl: error: shifts: no shift at 06:00" in capsys.readouterr().err


def test_account_changes_from_the_terminal_are_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "board.sqlite"
    monkeypatch.setattr("sys.stdin", io.StringIO("nina-password-1\n"))
    add = ["board", "user", "add", "nina", "--role", "nurse", "--password-stdin"]
    assert roomctl([*add, "--board-db", str(db)]) == 0
    assert roomctl(["board", "user", "disable", "nina", "--board-db", str(db)]) == 0
    assert roomctl(["board", "user", "remove", "nobody", "--board-db", str(db)]) != 0
    users = BoardDB(db)
    try:
        rows = users.audit_query(0, 4e9)
    finally:
        users.close()
    assert [(r.action, r.payload) for r in rows] == [
        ("user add", '{"user": "nina", "role": "nurse", "replace": false}'),
        ("user disable", '{"user": "nina"}'),
    ]  # nothing for the refused removal
    assert all(r.name.startswith("cli:") and r.result == "ok" for r in rows)


def test_csv_cells_never_run_as_formulas() -> None:
    resp = csv_response("x.csv", ("person", "n"), [("=HYPERLINK(1)", 3), ("-1+2", 0), ("bob", 1)])
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == 'attachment; filename="x.csv"'
    assert bytes(resp.body).decode().splitlines() == [
        "person,n", "'=HYPERLINK(1),3", "'-1+2,0", "bob,1"]  # fmt: skip


def test_shift_tables_follow_the_setting_order() -> None:
    """Three shifts in New York: c1-c3 (03:00-05:00 local) in the night that began on the 2nd,
    c4 (06:00) in the morning, c5-c7 (15:00-18:30) in the evening; shifts are listed in the
    setting's order (morning, evening, night), not by name."""
    shifts = parse_shifts("morning=06:00-14:00,evening=14:00-22:00,night=22:00-06:00")
    rep = report(call_rows_records(), shifts, NEW_YORK)
    assert rep.tables["shift"] == [
        stats("morning", 1, 1, 40, 40, 40),
        stats("evening", 3, 2, 20, 90, 90),  # c5 20, c6 unanswered, c7 90
        stats("night", 3, 3, 60, 180, 180),  # c1 30, c2 60, c3 180
    ]
    assert [s.key for s in rep.tables["shift_day"]] == [
        "2026-11-02 night", "2026-11-03 morning", "2026-11-03 evening"]  # fmt: skip


def test_a_test_call_from_the_board_counts_in_no_figure() -> None:
    """Issue 20: a test call (`cmd/test_call`) is staff checking the system, not a patient."""
    rows = call_rows()
    placed = next(r for r in rows if r["kind"] == "call_placed")
    test = {**placed, "call_id": "t1", "detail": {**(placed.get("detail") or {}),
                                                   "call_type": "test"}}  # fmt: skip
    ids = [r.call_id for r in call_records([test, *rows])]
    assert "t1" not in ids and ids == [r.call_id for r in call_records(rows)]
