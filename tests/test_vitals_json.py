"""The pydantic-free vitals payload (issue 17): byte for byte what the contract model writes,
valid against the model, and never used for a reading only pydantic may judge. And the
wire timestamp written without strftime, as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.messages import VITAL_FIELDS, VitalsMessage, wire_exclude
from contract.timefmt import format_ts
from contract.vitals import VITAL_LIMITS, Reading, vitals_fields
from controller.vitals_json import VitalsEncoder

EPOCH = "0123456789abcdef"
ENVELOPE = {"site": "north", "room": "101", "epoch": EPOCH}


def pydantic_payload(seq: int, ts: datetime, synced: bool, fields: dict[str, Any]) -> bytes:
    msg = VitalsMessage(**ENVELOPE, seq=seq, ts=ts, clock_synced=synced, **fields)
    return msg.model_dump_json(exclude=wire_exclude(msg)).encode()


def vital(name: str, wild: bool) -> st.SearchStrategy[Any]:
    lo, hi = VITAL_LIMITS[name]
    plain = st.none() | st.floats(lo, hi) | st.integers(int(lo), int(hi))
    if not wild:
        return plain
    return st.one_of(
        plain,
        st.floats(allow_nan=True, allow_infinity=True),  # mostly outside: pydantic's call
        st.sampled_from([0.0, -0.0, 1e-5, 0.0001, 99.99999999999999, True]),
    )


ASCII = st.text(alphabet="ABCxyz09 :/-_.\"\\'", max_size=66)
WILD_TEXT = st.text(max_size=70) | ASCII
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.just(datetime(2026, 12, 1, 5, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-5))))


@st.composite
def bodies(draw: st.DrawFn, wild: bool) -> dict[str, Any]:
    """A vitals body: plain (mostly what the fast road takes) or wild (mostly not)."""
    text = WILD_TEXT if wild else ASCII
    fields: dict[str, Any] = {name: draw(vital(name, wild)) for name in VITAL_FIELDS}
    fields["protocol"] = draw(st.sampled_from(["masimo", "nonin-df7", "", "x" * 33]) | text)
    fields["device_time"] = draw(st.none() | text)
    fields["alarms"] = draw(st.lists(text, max_size=3) | st.lists(st.just("a"), max_size=66))
    fields["quality"] = draw(st.lists(text, max_size=3))
    fields["alarm_raw"] = draw(st.none() | text)
    fields["exc_raw"] = draw(st.none() | text)
    return fields


@settings(max_examples=400, deadline=None)
@given(st.booleans().flatmap(bodies), st.integers(1, 2**40), TIMES, st.booleans())
def test_a_fast_payload_is_byte_for_byte_the_models(
    fields: dict[str, Any], seq: int, ts: datetime, synced: bool
) -> None:
    fast = VitalsEncoder(**ENVELOPE).payload(seq, ts, synced, fields)
    if fast is None:
        return  # pydantic's road: validated (and repaired) by the publisher
    assert fast == pydantic_payload(seq, ts, synced, fields)
    VitalsMessage.model_validate_json(fast, strict=False)


def test_a_monitors_everyday_reading_takes_the_fast_road() -> None:
    reading = Reading(
        "masimo", 0.0, spo2=97.0, pulse_rate=78, pi=2.75, device_time="12/01/26 05:24:28",
        alarm_raw="0000", exc_raw="000800", quality=("sensor_off",),
    )  # fmt: skip
    fields = vitals_fields(reading)
    ts = datetime(2026, 12, 1, 5, 24, 28, 123456, tzinfo=UTC)
    fast = VitalsEncoder(**ENVELOPE).payload(7, ts, True, fields)
    assert fast is not None
    assert fast == pydantic_payload(7, ts, True, fields)


def test_what_only_pydantic_may_judge_is_left_to_it() -> None:
    encoder = VitalsEncoder(**ENVELOPE)
    ts = datetime(2026, 12, 1, tzinfo=UTC)
    good = vitals_fields(Reading("masimo", 0.0, spo2=97.0))
    assert encoder.payload(1, ts, True, good) is not None
    for change in (
        {"spo2": 101.0},  # outside the contract's limits: nulled with a quality flag
        {"spo2": float("nan")},
        {"spo2": True},
        {"protocol": ""},
        {"device_time": "é"},
        {"alarms": ["x" * 65]},
        {"observed_at": {"spo2": "20261201050000"}},  # optional fields: the model's road
    ):
        assert encoder.payload(1, ts, True, {**good, **change}) is None, change
    assert encoder.payload(0, ts, True, good) is None


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
)
def test_wire_timestamps_are_written_as_before(when: datetime, zone: timezone) -> None:
    aware = when.replace(tzinfo=zone)
    utc = aware.astimezone(UTC)
    before = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    assert format_ts(aware) == before
