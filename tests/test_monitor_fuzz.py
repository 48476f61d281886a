"""Property tests: no byte sequence makes a parser raise, and what comes out is publishable."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_py.monitors.hl7_pcd01 import Hl7Parser, split_plain_messages
from firmware_py.monitors.parsers import PROTOCOLS, make_parser
from tests.support.monitor_fixtures import (
    as_message,
    fixed_clock,
    fixture_files,
    load,
    protocol_for,
)

FIXTURE_BYTES: dict[str, list[bytes]] = {p: [] for p in PROTOCOLS}
for _path in fixture_files():
    FIXTURE_BYTES[protocol_for(_path)].append(load(_path))

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(protocol: str, chunks: list[bytes]) -> None:
    parser = make_parser(protocol, clock=fixed_clock)
    for chunk in chunks:
        parser.feed(chunk)
        for reading in parser.readings():
            as_message(reading)  # raises if a value breaks the contract
        for ack in parser.acks():
            assert ack.startswith(b"\x0b") and ack.endswith(b"\x1c\r")
    assert parser.frames_accepted >= 0 and parser.frames_rejected >= 0


@FUZZ
@given(protocol=st.sampled_from(PROTOCOLS), chunks=st.lists(st.binary(max_size=300), max_size=12))
def test_random_bytes_never_raise(protocol: str, chunks: list[bytes]) -> None:
    run(protocol, chunks)


@st.composite
def mangled_stream(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    """Real fixture bytes, cut anywhere, with bytes flipped, dropped or inserted."""
    protocol = draw(st.sampled_from(PROTOCOLS))
    pieces = draw(st.lists(st.sampled_from(FIXTURE_BYTES[protocol]), min_size=1, max_size=3))
    data = bytearray(b"".join(pieces))
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "drop" and data:
            del data[pos]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    edges = [0, *cuts, len(data)]
    return protocol, [bytes(data[a:b]) for a, b in itertools.pairwise(edges)]


@FUZZ
@given(mangled_stream())
def test_mangled_fixtures_never_raise(case: tuple[str, list[bytes]]) -> None:
    run(*case)


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=10), st.binary(max_size=50))
def test_hl7_message_like_text_is_always_acked(lines: list[str], tail: bytes) -> None:
    parser = Hl7Parser(fixed_clock)
    body = ("MSH|^~\\&|" + "\r".join(lines)).encode() + tail
    parser.feed_message(body)
    assert len(list(parser.acks())) == 1
    assert parser.frames_accepted + parser.frames_rejected == 1
    for reading in parser.readings():
        as_message(reading)


@FUZZ
@given(st.binary(max_size=600))
def test_plain_hl7_files_never_raise(data: bytes) -> None:
    parser = Hl7Parser(fixed_clock)
    messages = split_plain_messages(data + b"\nMSH|^~\\&|X\n" + data)
    assert messages and all(m.startswith(b"MSH") for m in messages)
    for message in messages:
        parser.feed_message(message)
    assert len(list(parser.acks())) == len(messages)
