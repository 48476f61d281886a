"""Nonin DF2 and DF7: expected values of the fixtures, checksums, sentinels, status bits."""

from __future__ import annotations

import pytest

from firmware_py.monitors.nonin import NoninParser
from tests.support.monitor_fixtures import DATA, feed, fixed_clock, load

N = DATA / "nonin"
FORMATS = ["df2", "df7"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_normal_packets_after_a_partial_one(fmt: str) -> None:
    readings, parser = feed(f"nonin-{fmt}", load(N / f"{fmt}_normal.hex"))
    assert [(r.pulse_rate, r.spo2) for r in readings] == [(72.0, 97.0), (130.0, 95.0)]
    assert readings[0].quality == ()
    assert readings[1].quality == ("low_perfusion",)
    assert parser.frames_accepted == 60 and parser.frames_rejected == 0
    assert all(r.protocol == f"nonin-{fmt}" and r.received_at == fixed_clock() for r in readings)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sentinels_and_status_bits(fmt: str) -> None:
    (gone, oot, art), _parser = feed(f"nonin-{fmt}", load(N / f"{fmt}_sentinels.hex"))
    assert (gone.pulse_rate, gone.spo2) == (None, None)
    assert {"sensor_disconnected", "pulse_rate_missing", "spo2_missing"} <= set(gone.quality)
    assert gone.alarms == ("sensor_disconnected",)
    assert (oot.pulse_rate, oot.spo2) == (None, None) and "out_of_track" in oot.quality
    assert (art.pulse_rate, art.spo2) == (88.0, 93.0)
    assert set(art.quality) == {"artifact", "marginal_perfusion"}
    assert art.exc_raw == "26"


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_checksum_and_missed_packet_are_rejected(fmt: str) -> None:
    readings, parser = feed(f"nonin-{fmt}", load(N / f"{fmt}_checksum_and_missed.hex"))
    assert [(r.pulse_rate, r.spo2) for r in readings] == [(76.0, 99.0)]
    assert parser.frames_rejected == 2  # the bad frame, then the short packet
    assert isinstance(parser, NoninParser) and parser.packets_missed == 2


def test_df2_data_is_not_df7() -> None:
    data = load(N / "df2_normal.hex")
    readings, _parser = feed("nonin-df7", data)
    assert readings == []


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError):
        NoninParser("df8")
