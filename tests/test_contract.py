"""The message contract: models, topics, JSON Schema output and docs/CONTRACT.md."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from contract import topics
from contract.messages import SCHEMA_VERSION, VITAL_LIMITS, CallMessage, CallStatus, VitalsMessage
from contract.staff import PhaseCommand
from contract.topics import ALL_PAYLOAD_MODELS
from controller.cli import main
from controller.schema_cli import BEGIN_MARK, END_MARK, contract_markdown

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "site": "downtown",
    "room": "101",
    "epoch": "0000000000000001",
    "seq": 1,
    "clock_synced": True,
}
TS = datetime(2026, 11, 25, 8, 15, 2, 125000, tzinfo=UTC)


def vitals(**kw: object) -> VitalsMessage:
    return VitalsMessage(**ENV, ts=TS, protocol="masimo", **kw)  # type: ignore[arg-type]


def test_envelope_serialises_rfc3339_utc_with_z() -> None:
    other_zone = TS.astimezone(timezone(timedelta(hours=-5)))
    data = json.loads(VitalsMessage(**ENV, ts=other_zone, protocol="nonin-df2").model_dump_json())
    assert data["ts"] == "2026-11-25T08:15:02.125Z"
    assert data["v"] == SCHEMA_VERSION == 2
    assert VitalsMessage.model_validate_json(json.dumps(data)).ts == TS


def test_naive_timestamp_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        VitalsMessage(**ENV, ts=datetime(2026, 1, 1), protocol="masimo")  # type: ignore[arg-type]


def test_missing_vitals_are_null_not_zero() -> None:
    data = json.loads(vitals(spo2=97).model_dump_json())
    assert data["spo2"] == 97
    for name in VITAL_LIMITS:
        if name != "spo2":
            assert data[name] is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_refused(bad: float) -> None:
    with pytest.raises(ValidationError):
        vitals(spo2=bad)


@pytest.mark.parametrize("name", sorted(VITAL_LIMITS))
def test_out_of_range_refused(name: str) -> None:
    lo, hi = VITAL_LIMITS[name]
    vitals(**{name: lo})
    vitals(**{name: hi})
    with pytest.raises(ValidationError, match=name):
        vitals(**{name: hi + 1})
    with pytest.raises(ValidationError, match=name):
        vitals(**{name: lo - 1})


def test_extra_fields_and_wrong_types_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        vitals(bogus=1)
    with pytest.raises(ValidationError):
        vitals(spo2=True)
    with pytest.raises(ValidationError):
        CallMessage(**ENV, ts=TS, status="ringing")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        PhaseCommand.model_validate_json(b'{"phase": "infusion"}')  # no "by"


def test_models_are_frozen() -> None:
    msg = CallMessage(**ENV, ts=TS, status=CallStatus.IDLE)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        msg.seq = 2  # type: ignore[misc]


@given(st.binary(max_size=300))
def test_any_bytes_either_validate_or_raise_validation_error(raw: bytes) -> None:
    for model in ALL_PAYLOAD_MODELS.values():
        with contextlib.suppress(ValidationError):
            model.model_validate_json(raw)


def test_topics_built_in_one_place() -> None:
    assert topics.call("downtown", "101") == "clinic/downtown/room/101/call"
    assert (
        topics.cmd("downtown", "101", "claim", "ana") == "clinic/downtown/room/101/cmd/claim/ana"
    )
    assert topics.cmd_filter("downtown", "101") == "clinic/downtown/room/101/cmd/#"
    assert topics.all_rooms_filter("downtown") == "clinic/downtown/room/+/#"
    assert topics.logger_status("downtown") == "clinic/downtown/logger/status"
    parsed = topics.parse_room_topic("clinic/downtown/room/101/cmd/phase/ana")
    assert parsed == topics.ParsedTopic("downtown", "101", "cmd/phase", "ana")
    # without a sender it still parses (the room refuses it; the logger records it)
    parsed = topics.parse_room_topic("clinic/downtown/room/101/cmd/phase")
    assert parsed == topics.ParsedTopic("downtown", "101", "cmd/phase", None)
    assert topics.parse_room_topic("clinic/downtown/room/101/cmd/phase/a+b") is None
    assert topics.parse_room_topic("clinic/downtown/room/101/cmd/phase/ana/x") is None
    with pytest.raises(ValueError):
        topics.cmd("downtown", "101", "phase", "#")
    assert topics.parse_room_topic("clinic/downtown/room/101/nope") is None
    assert topics.parse_room_topic("clinic/downtown/logger/status") is None


@pytest.mark.parametrize("bad", ["", "Room1", "a/b", "+", "#", "x" * 64, "-a"])
def test_bad_identifiers_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="room"):
        topics.call("downtown", bad)


def test_schema_command_writes_every_payload(tmp_path: Path) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{n}.schema.json" for n in ALL_PAYLOAD_MODELS)
    vit = json.loads((tmp_path / "vitals.schema.json").read_text())
    assert "spo2" in vit["properties"] and "seq" in vit["required"]


def test_contract_doc_matches_models() -> None:
    doc = (ROOT / "docs" / "CONTRACT.md").read_text()
    start = doc.index(BEGIN_MARK) + len(BEGIN_MARK)
    end = doc.index(END_MARK)
    assert doc[start:end].strip() == contract_markdown().strip(), (
        "docs/CONTRACT.md is out of date: regenerate its tables with `roomctl schema --markdown`"
    )
    for name, model in ALL_PAYLOAD_MODELS.items():
        assert f"### {model.__name__} (`{name}`)" in doc


def test_largest_valid_messages_fit_the_logger_limit() -> None:
    from contract.messages import (
        MAX_MESSAGE_BYTES,
        ActiveAlert,
        EventMessage,
        StateMessage,
    )

    long = "x" * 64
    big_vitals = vitals(
        **{n: hi for n, (lo, hi) in VITAL_LIMITS.items()},
        alarms=[long] * 64,
        quality=[long] * 64,
        alarm_raw=long,
        exc_raw=long,
        device_time=long,
    )
    alert = ActiveAlert(name=long, field="x" * 32, value=1.0, threshold=1.0, since=TS)
    big_state = StateMessage(
        **ENV,
        ts=TS,
        phase="infusion",
        session_id=long,
        since=TS,
        alerts=[alert] * 32,
        scene="x" * 32,
    )  # type: ignore[arg-type]
    big_event = EventMessage(
        **ENV,
        ts=TS,
        kind="phase_refused",
        reason="r" * 500,
        detail={f"{i:064d}": "v" * 500 for i in range(32)},
        call_id=long,
        session_id=long,
        by=long,
    )  # type: ignore[arg-type]
    for msg in (big_vitals, big_state, big_event):
        assert len(msg.model_dump_json().encode()) < MAX_MESSAGE_BYTES
    with pytest.raises(ValidationError):
        EventMessage(**ENV, ts=TS, kind="phase_refused", detail={"k": "v" * 501})  # type: ignore[arg-type]
