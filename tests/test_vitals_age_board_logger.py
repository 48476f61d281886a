"""The board keeps the last blood pressure with its age, and says when a monitor is in demo
mode; the logger keeps each value's time and age (issue 18): an NIBP measured minutes ago
is never shown as current."""

from __future__ import annotations

import json
from typing import Any

from broker.board.live import SiteState
from broker.logger.store.sqlite import SqliteLogStore
from contract import topics
from contract.messages import VitalsMessage, wire_exclude
from tests.support.logger_store import SITE, put, q
from tests.support.monitor_fixtures import DATA, as_message, feed, load

TS = "2026-11-25T08:44:00.000Z"


def vitals(seq: int, **fields: Any) -> bytes:
    envelope = {"v": 1, "site": "s1", "room": "101", "epoch": "0000000000000001", "seq": seq,
                "ts": TS, "clock_synced": True, "protocol": "hl7"}  # fmt: skip
    return json.dumps({**envelope, **fields}).encode()


def test_last_nibp_is_kept_with_its_age_across_readings_without_one() -> None:
    s = SiteState("s1")
    nibp = vitals(1, nibp_sys=142, nibp_dia=86, age_s={"nibp_sys": 1080.0},
                  observed_at={"nibp_sys": "2026-11-25T08:26:00"})  # fmt: skip
    assert s.apply("101", "vitals", nibp, 100.0) is not None
    assert s.apply("101", "vitals", vitals(2, spo2=97), 160.0) is not None
    view = s.view("101", 170.0)
    assert view is not None and view["vitals"]["nibp_sys"] is None
    assert view["nibp"] == {"sys": 142.0, "dia": 86.0, "mean": None,
                            "observed_at": "2026-11-25T08:26:00", "age_s": 1150.0,
                            "at_ms": 170000}  # fmt: skip
    assert view["demo"] is False and view["trouble"] == []


def test_payload_without_age_is_as_old_as_its_arrival() -> None:
    s = SiteState("s1")
    s.apply("101", "vitals", vitals(1, nibp_sys=120, nibp_dia=80), 100.0)
    assert s.view("101", 130.0)["nibp"]["age_s"] == 30.0  # type: ignore[index]


def test_demo_mode_is_shown() -> None:
    s = SiteState("s1")
    s.apply("101", "vitals", vitals(1, spo2=97, quality=["demo_mode"]), 100.0)
    view = s.view("101", 101.0)
    assert view is not None and view["demo"] is True
    assert view["trouble"] == ["monitor in demo mode: not patient data"]


def test_logger_keeps_times_ages_site_and_alarm_details(store: SqliteLogStore) -> None:
    """The logger's `vitals.detail` (schema 4) holds what a reading says beyond its numbers;
    NULL for a reading without any."""
    (reading,), _ = feed("hl7", load(DATA / "hl7" / "nihon_kohden_two_groups.hl7"))
    with_times = VitalsMessage(**{**as_message(reading).model_dump(), "site": SITE})
    put(store, topics.vitals(with_times.site, with_times.room), wire(with_times))
    plain = VitalsMessage(**{**with_times.model_dump(), "seq": 2, "observed_at": None,
                             "age_s": None})  # fmt: skip
    put(store, topics.vitals(plain.site, plain.room), wire(plain))
    rows = q(store, "SELECT seq, detail FROM vitals ORDER BY seq")
    detail = json.loads(str(rows[0][1]))
    assert detail["age_s"]["nibp_sys"] == 1080.0
    assert detail["observed_at"]["nibp_sys"] == "2026-11-25T08:26:00"
    assert rows[1] == (2, None)


def wire(message: VitalsMessage) -> str:
    return message.model_dump_json(exclude=wire_exclude(message))
