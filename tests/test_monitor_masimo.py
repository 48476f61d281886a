"""Masimo ASCII 1: expected values of every Masimo fixture, and the parser's edge rules."""

from __future__ import annotations

from firmware_py.monitors.masimo import EXC_BITS, MasimoParser, decode_bits, masimo_value
from tests.support.monitor_fixtures import DATA, feed, fixed_clock, load

M = DATA / "masimo"


def test_openice_radical7_and_radical5_sample() -> None:
    sample = M / "masimo_radical_openice_poxrad_discrete_examples.txt"
    readings, parser = feed("masimo", load(sample))
    assert (parser.frames_accepted, parser.frames_rejected) == (2, 0)
    r7, r5 = readings
    assert r7.device_time == "12/01/05 11:56:29"
    assert r7.alarm_raw == "0000" and r7.exc_raw == "000820" and r7.alarms == ()
    # EXC 0x20 = sensor off: the wire's 98/240/20.00 are not trusted (section 6.3).
    assert (r7.spo2, r7.pulse_rate, r7.pi) == (None, None, None)
    assert "sensor_off" in r7.quality and "spo2_invalid_status" in r7.quality
    assert (r5.spo2, r5.pulse_rate, r5.pi) == (97.0, 64.0, 11.82)
    assert r5.alarms == ("alarm_silenced",) and r5.alarm_raw == "20" and r5.exc_raw == "800"
    assert r5.quality == ()


def test_rad8_line_with_dash_fields() -> None:
    (r,), _parser = feed("masimo", load(M / "rad8_yahnatan_ascii1.txt"))
    assert (r.spo2, r.pulse_rate, r.pi) == (98.0, 97.0, 3.6)
    assert r.quality == () and r.alarms == ()
    assert r.received_at == fixed_clock()


def test_rad8_session_drops_partial_first_line_and_maps_bits() -> None:
    readings, parser = feed("masimo", load(M / "rad8_session_crlf_blank_lines.txt"))
    assert (parser.frames_accepted, parser.frames_rejected) == (3, 0)
    good, off, low = readings
    assert (good.spo2, good.pulse_rate, good.pi) == (97.0, 72.0, 3.6)
    assert (off.spo2, off.pulse_rate, off.pi) == (None, None, None)
    assert {"spo2_missing", "pulse_rate_missing", "pi_missing"} <= set(off.quality)
    assert {"no_sensor", "sensor_off"} <= set(off.quality)
    assert off.alarms == ("alarm_active",)
    assert (low.spo2, low.pulse_rate, low.pi) == (89.0, 112.0, 0.42)
    assert low.alarms == ("spo2_low", "alarm_active", "alarm_silenced")  # 0x32 read as hex
    assert low.quality == ("low_perfusion",)


def test_radical7_colour_variant() -> None:
    (a, b), _parser = feed("masimo", load(M / "radical7_colour_lf_cr.txt"))
    assert (a.spo2, a.pulse_rate, a.pi) == (98.0, 123.0, 0.55)  # PI without %
    assert a.alarm_raw == "000000" and a.exc_raw == "0000C00"
    assert a.quality == ("low_signal_iq",)
    assert b.alarms == ("alarm_active", "alarm_silenced")


def test_root_key_set_and_rejected_lines() -> None:
    readings, parser = feed("masimo", load(M / "root_cr_only_with_bad_lines.txt"))
    assert (parser.frames_accepted, parser.frames_rejected) == (2, 3)
    assert (readings[0].spo2, readings[0].pulse_rate, readings[0].pi) == (96.0, 81.0, 2.1)
    assert "bad_status_field" in readings[1].quality


def test_first_line_is_dropped_only_when_damaged_or_asked() -> None:
    line = (M / "rad8_yahnatan_ascii1.txt").read_bytes()
    forced = MasimoParser(fixed_clock, drop_first_line=True)
    forced.feed(line + line)
    assert len(list(forced.readings())) == 1
    assert forced.frames_rejected == 0


def test_overlong_line_is_rejected_once_and_parser_recovers() -> None:
    parser = MasimoParser(fixed_clock)
    line = (M / "rad8_yahnatan_ascii1.txt").read_bytes()
    parser.feed(line)
    parser.feed(b"x" * 5000)
    parser.feed(b"y" * 5000 + b"\r\n" + line)
    assert len(list(parser.readings())) == 2
    assert parser.frames_rejected == 1


def test_value_and_bit_helpers() -> None:
    assert masimo_value("--.-%") == (None, True)
    assert masimo_value("+--") == (None, True)
    assert masimo_value("-02") == (-2.0, False)
    assert masimo_value("098%") == (98.0, False)
    assert masimo_value("x9") == (None, False)
    assert decode_bits("000820", EXC_BITS, 0x800) == (0x820, ["sensor_off"])
    assert decode_bits("zz", EXC_BITS) == (None, [])
    assert decode_bits("400000000", EXC_BITS)[1] == ["bit_0x400000000"]


def test_trend_download_format_is_read_and_zero_is_never_a_value() -> None:
    """`SpO2=097 PR=069 PI=04.69 EXC=800:SET` (issue 18): PR for BPM, EXC hex before `:`."""
    readings, parser = feed("masimo", load(M / "masimo_trend_download_manual_format.txt"))
    good, off = readings
    assert (good.spo2, good.pulse_rate, good.pi, good.quality) == (97.0, 69.0, 4.69, ())
    assert good.exc_raw == "800:SET"
    assert (off.spo2, off.pulse_rate) == (None, None)  # SpO2=000 is never 0 %
    assert {"spo2_zero", "sensor_off"} <= set(off.quality)
    assert parser.frames_rejected == 1  # the line without the date/time prefix: refused
