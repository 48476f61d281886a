"""HL7 PCD-01/PCD-04 over MLLP: fixture values, ACKs, MLLP framing edge cases."""

from __future__ import annotations

import hl7
import pytest

from firmware_py.monitors.hl7_codes import canonical_unit, convert, field_for
from firmware_py.monitors.hl7_pcd01 import Hl7Parser, split_plain_messages
from firmware_py.monitors.mllp import MllpDeframer, mllp_frame
from tests.support.monitor_fixtures import DATA, feed, fixed_clock, load

H = DATA / "hl7"


def acks_of(parser: object) -> list[hl7.Message]:
    assert isinstance(parser, Hl7Parser)
    out = []
    for frame in parser.acks():
        assert frame.startswith(b"\x0b") and frame.endswith(b"\x1c\r")
        out.append(hl7.parse(frame[1:-2].decode()))
    return out


def one(name: str) -> tuple[object, Hl7Parser]:
    readings, parser = feed("hl7", load(H / name))
    assert len(readings) == 1 and isinstance(parser, Hl7Parser)
    return readings[0], parser


def test_ge_pcd01_with_cuff_nibp_family() -> None:
    r, parser = one("ge_b40_pcd01_cuff_nibp.hl7")
    assert r.vitals() == {  # type: ignore[attr-defined]
        "spo2": 97.0, "pulse_rate": 88.0, "heart_rate": 87.0, "pi": None,
        "nibp_sys": 142.0, "nibp_dia": 91.0, "nibp_mean": 108.0,
        "resp_rate": 16.0, "etco2": 38.0, "temp_c": 36.8,
    }
    assert r.device_time == "20261125081500+0000"  # type: ignore[attr-defined]
    assert r.quality == ()  # type: ignore[attr-defined]
    (ack,) = acks_of(parser)
    assert str(ack.segment("MSA")(1)) == "AA" and str(ack.segment("MSA")(2)) == "GE000123"
    assert str(ack.segment("MSH")(9)) == "ACK^R01^ACK"
    assert str(ack.segment("MSH")(5)) == "GE B40^00A0C8FFFE123456^EUI-64"


def test_philips_ucum_units_kpa_and_spaces() -> None:
    r, _ = one("philips_ucum_spaces.hl7")
    v = r.vitals()  # type: ignore[attr-defined]
    assert (v["heart_rate"], v["spo2"], v["pulse_rate"]) == (91.0, 96.0, 90.0)
    assert (v["nibp_sys"], v["nibp_dia"], v["nibp_mean"]) == (151.0, 95.0, 114.0)
    assert v["etco2"] == 38.3  # 5.1 kPa
    assert (v["temp_c"], v["pi"]) == (36.9, 1.8)


def test_comen_noninvasive_family_duplicate_and_empty_values() -> None:
    r, _ = one("comen_noninv_duplicate_empty.hl7")
    v = r.vitals()  # type: ignore[attr-defined]
    assert v["spo2"] == 95.0  # first of the two channels wins
    assert (v["nibp_sys"], v["nibp_dia"], v["nibp_mean"]) == (128.0, 82.0, 97.0)
    assert v["resp_rate"] is None
    assert set(r.quality) == {"spo2_duplicate", "resp_rate_missing"}  # type: ignore[attr-defined]


def test_mindray_plain_labels_units_and_minus_100() -> None:
    r, parser = one("mindray_v231_plain_units.hl7")
    v = r.vitals()  # type: ignore[attr-defined]
    assert (v["heart_rate"], v["spo2"], v["pulse_rate"], v["resp_rate"]) == (84.0, 98.0, 83.0, 14.0)
    assert (v["nibp_sys"], v["nibp_dia"], v["nibp_mean"], v["temp_c"]) == (139.0, 88.0, 105.0, 37.1)
    assert v["etco2"] is None and r.quality == ("etco2_no_value",)  # type: ignore[attr-defined]
    (ack,) = acks_of(parser)
    assert str(ack.segment("MSH")(12)) == "2.3.1"


def test_gateway_fahrenheit_and_invalid_values() -> None:
    r, _ = one("gateway_fahrenheit_out_of_range.hl7")
    v = r.vitals()  # type: ignore[attr-defined]
    assert v["temp_c"] == 37.0
    assert v["nibp_sys"] == 138.0  # 18.4 kPa
    assert (v["spo2"], v["pulse_rate"], v["heart_rate"], v["nibp_dia"]) == (None,) * 4
    assert set(r.quality) == {  # type: ignore[attr-defined]
        "spo2_out_of_range", "pulse_rate_invalid", "heart_rate_status_x", "nibp_dia_unit_unknown"
    }
    assert r.alarms == ("resp_rate_high",)  # type: ignore[attr-defined]


def test_oru_r40_alarm() -> None:
    r, parser = one("ge_b40_pcd04_oru_r40_alarm.hl7")
    assert r.spo2 == 86.0  # type: ignore[attr-defined]
    assert set(r.alarms) == {"spo2_low", "spo2_lo"}  # type: ignore[attr-defined]
    assert r.alarm_raw == "MDC_EVT_LO" and "alarm_report" in r.quality  # type: ignore[attr-defined]
    (ack,) = acks_of(parser)
    assert str(ack.segment("MSH")(9)) == "ACK^R40^ACK"


def test_embedded_fs_and_two_messages_in_one_read() -> None:
    readings, parser = feed("hl7", load(H / "masimo_psn_embedded_fs_two_messages.mllp"))
    assert [(r.spo2, r.pulse_rate) for r in readings] == [(93.0, 101.0), (94.0, 99.0)]
    assert [str(a.segment("MSA")(2)) for a in acks_of(parser)] == ["PSN-1", "PSN-2"]
    assert parser.frames_rejected == 0


def test_not_hl7_gets_an_ae_ack_and_is_rejected() -> None:
    readings, parser = feed("hl7", load(H / "not_hl7.txt"))
    assert readings == [] and parser.frames_rejected == 1
    (ack,) = acks_of(parser)
    assert str(ack.segment("MSA")(1)) == "AE"


def test_ignored_message_type_is_acked_aa_without_reading() -> None:
    parser = Hl7Parser(fixed_clock)
    parser.feed(mllp_frame(b"MSH|^~\\&|X|Y|||20260101||ADT^A01|A1|P|2.6\rPID|||1\r"))
    assert list(parser.readings()) == []
    (ack,) = acks_of(parser)
    assert str(ack.segment("MSA")(1)) == "AA" and parser.messages_ignored == 1


def test_unterminated_frame_is_dropped_when_a_new_one_starts() -> None:
    good = load(H / "ge_b40_pcd01_cuff_nibp.hl7")
    readings, parser = feed("hl7", good[: len(good) // 2] + good)
    assert len(readings) == 1 and parser.frames_rejected == 1
    assert len(acks_of(parser)) == 1


def test_deframer_limits_frame_size_and_resyncs() -> None:
    d = MllpDeframer(max_frame=100)
    assert d.feed(b"\x0b" + b"x" * 200) == []
    assert d.frames_dropped == 1 and d.pending == 0
    assert d.feed(b"noise\x0bMSH|a\x1c") == []
    assert d.feed(b"\r\x0bMSH|b\x1c\r") == [b"MSH|a", b"MSH|b"]


def test_plain_file_splitting_handles_cr_lf_crlf() -> None:
    text = b"junk\nMSH|^~\\&|A\r\nOBX|1\nMSH|^~\\&|B\rOBX|2\r\n"
    assert split_plain_messages(text) == [b"MSH|^~\\&|A\rOBX|1\r", b"MSH|^~\\&|B\rOBX|2\r"]


@pytest.mark.parametrize(
    ("code", "refid", "field"),
    [
        ("150021", "", "nibp_sys"),
        ("150303", "", "nibp_mean"),
        ("0", "MDC_ECG_CARD_BEAT_RATE", "heart_rate"),
        ("101", "HR", "heart_rate"),
        ("172", "NIBP-M", "nibp_mean"),
        ("188740", "MDC_ATTR_PT_HEIGHT", None),
    ],
)
def test_field_mapping(code: str, refid: str, field: str | None) -> None:
    assert field_for(code, refid) == field


def test_units() -> None:
    assert canonical_unit(["266560", "MDC_DIM_FAHR", "MDC"]) == "degF"
    assert canonical_unit(["", ""]) == ""
    assert canonical_unit(["parsec", ""]) is None
    assert convert("temp_c", 212.0, "degF") == 100.0
    assert convert("spo2", 97.0, "mmHg") is None
