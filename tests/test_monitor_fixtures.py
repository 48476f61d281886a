"""Every sample and fixture, fed whole, one byte at a time and with garbage around it.

The loaders the `test_monitor_*` modules share are in tests/support/monitor_fixtures.py.
Expected values per fixture are in the per-protocol modules; here the three ways of feeding
must agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from contract.messages import VITAL_LIMITS as CONTRACT_LIMITS
from contract.vitals import VITAL_LIMITS, VITAL_NAMES
from tests.support.monitor_fixtures import (
    DATA,
    as_message,
    feed,
    fixed_clock,
    fixture_files,
    load,
    protocol_for,
    with_garbage,
)


def test_limits_match_the_contract() -> None:
    assert VITAL_LIMITS == CONTRACT_LIMITS
    assert set(VITAL_NAMES) == set(CONTRACT_LIMITS)


# SHA-256 of the public sample as published (tests/data/monitors/README.md names its source)
PUBLIC_SAMPLE_SHA256 = "60fbb7bead3de5d88f46a09d47883e541b641b6df18bc45aa76a592194a3975c"


def test_public_sample_is_kept_unchanged() -> None:
    name = "masimo_radical_openice_poxrad_discrete_examples.txt"
    digest = hashlib.sha256((DATA / "masimo" / name).read_bytes()).hexdigest()
    assert digest == PUBLIC_SAMPLE_SHA256


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_fed_three_ways_agrees(path: Path) -> None:
    protocol = protocol_for(path)
    data = load(path)
    whole, p_whole = feed(protocol, data)
    bytewise, p_byte = feed(protocol, data, "bytewise")
    garbled, p_garbage = feed(protocol, with_garbage(protocol, data))
    assert whole == bytewise
    assert whole == garbled
    assert (p_whole.frames_accepted, p_whole.frames_rejected) == (
        p_byte.frames_accepted,
        p_byte.frames_rejected,
    )
    assert p_garbage.frames_accepted == p_whole.frames_accepted
    for reading in whole:
        message = as_message(reading)
        assert reading.protocol == protocol
        assert reading.received_at == fixed_clock()
        for name in VITAL_NAMES:
            assert getattr(message, name) != 0 or name in ("etco2", "resp_rate", "pi")
    if path.name != "not_hl7.txt":
        assert whole, "every fixture except the non-HL7 one yields readings"
