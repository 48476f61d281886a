"""Property tests (hypothesis) on the config loaders and the contract models.

Parsers are covered by tests/test_monitor_fuzz.py. Here: any file handed to the room's or
the logger's config loader gives a config or the loader's own readable error (never another
exception); any JSON at any contract model validates or raises `ValidationError`; a valid
message survives a JSON round trip; the vitals limits hold at their edges, NaN and
infinities are refused; topics built by `contract.topics` parse back.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from broker.logger import config as logger_config
from contract import messages, staff, topics
from controller.config import ConfigError, load_config

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

GOOD_ROOM = {
    "site": "downtown",
    "room": "101",
    "state_dir": "/tmp/roomctl-fuzz",
    "broker": {"url": "mqtt://127.0.0.1:1883"},
    "gpio": {"call_pin": 5, "cancel_pin": 6},
    "monitor": {"protocol": "masimo", "transport": "serial", "address": "/dev/ttyUSB0"},
    "timing": {"min_recovery_min": 30},
    "alerts": {"infusion": [{"name": "spo2_low", "field": "spo2", "op": "below",
                             "threshold": 90}]},
}  # fmt: skip

# TOML-representable values (no None), nested a little.
toml_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
toml_value = st.recursive(
    toml_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def toml_dumps(data: dict[str, Any]) -> str:
    """A small TOML writer (inline tables) for generated documents."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items()) + "}"

    return "\n".join(f"{json.dumps(k)} = {val(v)}" for k, v in data.items()) + "\n"


def paths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += paths(v, (*prefix, k))
    return out


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def load_room(tmp_path: Path, text: str | bytes) -> None:
    f = tmp_path / "room.toml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        load_config(f)
    except ConfigError as exc:
        assert exc.problems and exc.source == str(f)  # every problem is printed with the file
        assert str(exc) == "\n".join(f"{f}: {p}" for p in exc.problems)


def load_logger(tmp_path: Path, text: str | bytes) -> None:
    f = tmp_path / "logger.toml"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        logger_config.LoggerConfig.load(f, {"site": "s1", "broker": "mqtt://127.0.0.1:1883"})
    except logger_config.ConfigError as exc:
        assert str(f) in str(exc)
    except Exception as exc:
        pytest.fail(
            f"BUG broker/logger/config.py LoggerConfig.load: {type(exc).__name__}: {exc} "
            "instead of a ConfigError naming the file. Causes: `data.update(raw.get('logger', "
            "raw))` assumes [logger] is a table (`logger = 5` -> TypeError, a traceback from "
            "`roomctl logger`); `read_text()` of a non-UTF-8 file raises UnicodeDecodeError, "
            "which is not caught with OSError/TOMLDecodeError. Fix: catch UnicodeDecodeError "
            "there, and raise ConfigError when the [logger] section is not a table."
        )


def test_the_good_room_file_loads(tmp_path: Path) -> None:
    f = tmp_path / "room.toml"
    f.write_text(toml_dumps(GOOD_ROOM))
    assert load_config(f).gpio.call_pin == 5


@FUZZ
@given(data=st.binary(max_size=400))
@example(data=b"\xff\xfe not utf-8")
@example(data=b'site = "a"\nroom = "b"\n[broker]\nurl = "mqtt://[::1"\n')
def test_room_config_any_bytes_load_or_say_why(tmp_path: Path, data: bytes) -> None:
    load_room(tmp_path, data)


@FUZZ
@given(choice=st.data(), value=toml_value)
def test_room_config_any_value_in_any_field_loads_or_names_it(
    tmp_path: Path, choice: st.DataObject, value: Any
) -> None:
    path = choice.draw(st.sampled_from(paths(GOOD_ROOM)))
    load_room(tmp_path, toml_dumps(set_path(GOOD_ROOM, path, value)))


@FUZZ
@given(
    doc=st.dictionaries(
        st.sampled_from(
            [
                "site",
                "room",
                "broker",
                "gpio",
                "monitor",
                "timing",
                "outbox",
                "alerts",
                "scenes",
                "x",
            ]
        ),
        toml_value,
        max_size=6,
    )
)
def test_room_config_any_document_loads_or_says_why(tmp_path: Path, doc: dict[str, Any]) -> None:
    load_room(tmp_path, toml_dumps(doc))


@FUZZ
@given(
    doc=st.dictionaries(
        st.sampled_from(
            ["logger", "site", "broker", "max_bytes", "queue_max", "retention_days", "share_group"]
        ),
        toml_value,
        max_size=4,
    )
)
@example(doc={"logger": 5})
def test_logger_config_any_document_loads_or_says_why(tmp_path: Path, doc: dict[str, Any]) -> None:
    load_logger(tmp_path, toml_dumps(doc))


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\xff\xfe not utf-8")
def test_logger_config_any_bytes_load_or_say_why(tmp_path: Path, data: bytes) -> None:
    load_logger(tmp_path, data)


MODELS: list[type[BaseModel]] = [
    *topics.ROOM_MESSAGES.values(),
    *topics.COMMANDS.values(),
    staff.SimButton,
]


@FUZZ
@given(model=st.sampled_from(MODELS), value=json_value)
def test_any_json_validates_or_raises_validation_error(model: type[BaseModel], value: Any) -> None:
    try:
        raw = json.dumps(value)
    except ValueError:
        return
    with contextlib.suppress(ValidationError):
        model.model_validate_json(raw)


@FUZZ
@given(model=st.sampled_from(MODELS), data=st.binary(max_size=200))
def test_any_bytes_validate_or_raise_validation_error(model: type[BaseModel], data: bytes) -> None:
    with contextlib.suppress(ValidationError):
        model.model_validate_json(data)


ident = st.from_regex(messages.IDENT_RE, fullmatch=True)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def vital_strategy(name: str) -> st.SearchStrategy[float | None]:
    lo, hi = messages.VITAL_LIMITS[name]
    return st.none() | st.floats(min_value=lo, max_value=hi)


@FUZZ
@given(
    site=ident,
    room=ident,
    seq=st.integers(min_value=1, max_value=2**53),
    ts=aware,
    synced=st.booleans(),
    vitals=st.fixed_dictionaries({n: vital_strategy(n) for n in messages.VITAL_FIELDS}),
    alarms=st.lists(st.text(max_size=64), max_size=5),
)
def test_valid_vitals_round_trip(
    site: str,
    room: str,
    seq: int,
    ts: datetime,
    synced: bool,
    vitals: dict[str, float | None],
    alarms: list[str],
) -> None:
    msg = messages.VitalsMessage(
        site=site, room=room, epoch="0000000000000001", seq=seq, ts=ts, clock_synced=synced,
        protocol="masimo",
        alarms=alarms, **vitals,
    )  # fmt: skip
    back = messages.VitalsMessage.model_validate_json(msg.model_dump_json())
    assert back.model_dump() == {**msg.model_dump(), "ts": back.ts}
    assert abs((back.ts - ts).total_seconds()) < 0.001  # millisecond precision on the wire


@FUZZ
@given(
    name=st.sampled_from(messages.VITAL_FIELDS),
    value=st.floats(allow_nan=True, allow_infinity=True),
)
def test_vitals_limits_nan_and_infinities(name: str, value: float) -> None:
    lo, hi = messages.VITAL_LIMITS[name]
    env = {
        "site": "s",
        "room": "r",
        "epoch": "0000000000000001",
        "seq": 1,
        "ts": datetime.now(UTC),
        "clock_synced": True,
    }
    ok = math.isfinite(value) and lo <= value <= hi
    try:
        messages.VitalsMessage(**env, protocol="masimo", **{name: value})
        assert ok, f"{name}={value} accepted outside {lo}-{hi}"
    except ValidationError:
        assert not ok, f"{name}={value} refused inside {lo}-{hi}"


@FUZZ
@given(site=ident, room=ident, leaf=st.sampled_from(sorted(topics.SPEC_BY_LEAF)))
def test_topics_round_trip(site: str, room: str, leaf: str) -> None:
    parsed = topics.parse_room_topic(topics.room_topic(site, room, leaf))
    assert parsed is not None and (parsed.site, parsed.room, parsed.leaf) == (site, room, leaf)


@FUZZ
@given(topic=st.text(max_size=80) | st.lists(st.text(max_size=10), max_size=7).map("/".join))
def test_any_topic_parses_or_is_none(topic: str) -> None:
    parsed = topics.parse_room_topic(topic)
    if parsed is not None:
        assert topics.room_topic(parsed.site, parsed.room, parsed.leaf) == topic


@pytest.mark.parametrize("bad", ["", "A", "-x", "a/b", "a+b", "a#", "x" * 64, "é"])
def test_bad_idents_refused_by_models_and_topics(bad: str) -> None:
    with pytest.raises(ValidationError):
        messages.EventMessage(site=bad, room="r", epoch="0000000000000001", seq=1,
                              ts=datetime.now(UTC), clock_synced=True,
                              kind=messages.EventKind.DAEMON_STARTED)  # fmt: skip
    with pytest.raises(ValueError):
        topics.room_topic(bad, "r", "events")
