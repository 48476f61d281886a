"""HL7 dialects (issue 18): vendor tables, detection, per-value times, alarms, local maps.

Fixtures are in tests/data/monitors/hl7/ (README there names the source of each shape);
the three ways of feeding them (whole, byte by byte, with garbage) are checked for every
fixture by test_monitor_fixtures.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from contract.messages import OPTIONAL_VITALS_FIELDS, VitalsMessage, wire_exclude
from contract.vitals import ALERT_MAX_AGE_S, DEMO_FLAG, Reading
from controller.cli import main as cli_main
from controller.config import ConfigError, MonitorDialect
from controller.core.io_types import ReadingReceived
from firmware_py.monitors.dialect import (
    DIALECTS,
    DialectError,
    DialectSet,
    load_dialect,
    read_map_file,
)
from firmware_py.monitors.hl7_codes import hl7_time, resolve
from firmware_py.monitors.hl7_pcd01 import Hl7Parser
from firmware_py.monitors.mllp import mllp_frame
from tests.support.monitor_fixtures import DATA, as_message, feed, fixed_clock, load
from tests.support.room_core import Room, bodies, config, events

H = DATA / "hl7"


def readings_of(name: str) -> tuple[list[Reading], Hl7Parser]:
    readings, parser = feed("hl7", load(H / name))
    assert isinstance(parser, Hl7Parser)
    return readings, parser


def parse_one(text: str, **kwargs: object) -> Reading:
    parser = Hl7Parser(fixed_clock, **kwargs)  # type: ignore[arg-type]
    parser.feed(mllp_frame(text.replace("\n", "\r").encode()))
    (reading,) = list(parser.readings())
    return reading


def test_every_packaged_table_loads_and_names_its_source() -> None:
    for name in DIALECTS:
        dialect = load_dialect(name)
        assert dialect.codes and dialect.units
        assert dialect.files[0] == "dialect table mdc.toml"
    legacy = load_dialect("mindray-legacy")
    assert legacy.codes["170"].field == "nibp_sys" and -100.0 in legacy.sentinels
    assert legacy.kind_by_control_id["503"] == "aperiodic"


def test_mindray_legacy_session_values_aperiodic_nibp_and_alarms() -> None:
    readings, parser = readings_of("mindray_legacy_t8_session.hl7")
    assert parser.dialects_seen == {"mindray-legacy": 11}
    assert parser.messages_ignored == 3  # keep-alive 106, value status 205, IBP-only 204
    values = [{k: v for k, v in r.vitals().items() if v is not None} for r in readings]
    assert values[:5] == [
        {"heart_rate": 72.0},
        {"resp_rate": 16.0},
        {"temp_c": 36.9},
        {"spo2": 97.0, "pulse_rate": 71.0, "pi": 3.4},
        {"resp_rate": 15.0},  # `0^RR`: unknown code, the name decides
    ]
    nibp = readings[5]
    # the later `170^Sys|-100` row with a zero date does not overwrite the valid one
    assert (nibp.nibp_sys, nibp.nibp_dia, nibp.nibp_mean) == (131.0, 81.0, 97.0)
    assert dict(nibp.observed_at)["nibp_sys"] == "2026-11-25T08:12:05"
    assert nibp.quality == ()
    phys, tech = readings[6], readings[7]
    assert phys.alarms == ("mindray_phys_10033", "spo2_high", "mindray_phys_10076", "temp_c_low")
    low = {a.id: a for a in phys.alarm_details}["temp_c_low"]
    assert (low.priority, low.kind, low.text) == ("high", "physiological", "T1 Too Low")
    assert low.time == "2026-11-25T08:15:31"
    assert tech.alarms == ("mindray_tech_205", "mindray_tech_5")
    assert {a.kind for a in tech.alarm_details} == {"technical"}
    assert "alarm_report" in phys.quality and phys.vitals() == dict.fromkeys(phys.vitals())


def test_ibp_rows_never_become_nibp_or_pulse() -> None:
    readings, _ = readings_of("mindray_legacy_t8_session.hl7")
    assert all(r.nibp_sys != 118.0 and r.pulse_rate != 74.0 for r in readings)


def test_nihon_kohden_two_groups_each_keep_their_time() -> None:
    (r,), parser = readings_of("nihon_kohden_two_groups.hl7")
    assert parser.dialects_seen == {"nihon-kohden": 1}
    assert (r.heart_rate, r.spo2, r.pulse_rate) == (78.0, 98.0, 77.0)
    assert (r.nibp_sys, r.nibp_dia, r.nibp_mean) == (142.0, 86.0, 104.0)
    observed, ages = dict(r.observed_at), dict(r.age_s)
    assert observed["nibp_sys"] == "2026-11-25T08:26:00"  # OBR-7 of the NIBP group
    assert observed["spo2"] == "2026-11-25T08:44:00"  # OBX-14
    assert ages["nibp_sys"] == 1080.0 and ages["spo2"] == 0.0
    # the 18-minute-old NIBP is shown with its age but never raises an alert
    alert = r.alert_values()
    assert alert["nibp_sys"] is None and alert["spo2"] == 98.0
    assert ages["nibp_sys"] > ALERT_MAX_AGE_S


def test_pcd04_technical_alarm_content() -> None:
    (r,), _ = readings_of("mindray_pcd04_technical_lead_off.hl7")
    assert r.alarms == ("tech_lead_off",)
    (a,) = r.alarm_details
    assert (a.priority, a.kind, a.phase, a.state) == ("low", "technical", "start", "active")
    assert a.time == "2026-11-25T12:47:38+08:00" and a.text == "MDC_EVT_LEAD_OFF"


def test_pcd04_physiological_alarm_keeps_its_identifiers() -> None:
    (r,), _ = readings_of("ge_b40_pcd04_oru_r40_alarm.hl7")
    assert set(r.alarms) == {"spo2_low", "spo2_lo"}
    lo = {a.id: a for a in r.alarm_details}["spo2_lo"]
    assert lo.phase == "start" and lo.time == "2026-11-25T08:19:58+00:00"


def test_body_site_conflict_sentinels_and_training_mode() -> None:
    (r,), _ = readings_of("gateway_temp_sites_conflict_training.hl7")
    # `188496^MDC_TEMP_AXIL`: the code is not the standard axillary code (188452); the
    # name is known, the code is not: the name decides. The oral row comes second.
    assert (r.temp_c, r.temp_site) == (36.4, "axillary")
    assert "temp_c_duplicate" in r.quality
    # `150456^MDC_PRESS_CUFF_SYS`: the code says SpO2, the name says NIBP: refused
    assert r.spo2 is None and r.nibp_sys is None
    assert {"spo2_code_name_conflict", "nibp_sys_code_name_conflict"} <= set(r.quality)
    # IEEE FLOAT NaN 8388607 and an OBX-8 null flavour NAV: null, never a number or 0
    assert r.pulse_rate is None and "pulse_rate_no_value" in r.quality
    assert r.heart_rate is None and "heart_rate_no_value" in r.quality
    # OBX-14 a quarter of an hour after MSH-7: no age, flagged
    assert "resp_rate_time_ahead" in r.quality and "resp_rate" not in dict(r.age_s)
    # MSH-11 T (training): not patient data; alerts ignore it
    assert DEMO_FLAG in r.quality
    assert set(r.alert_values().values()) == {None}


def test_lost_segment_separators_refused_lf_only_accepted() -> None:
    readings, parser = readings_of("mindray_legacy_lf_only_separators_lost.mllp")
    assert parser.frames_rejected == 1 and parser.frames_accepted == 2
    assert [(r.spo2, r.pulse_rate, r.heart_rate) for r in readings] == [
        (96.0, 66.0, None), (None, None, 67.0)
    ]
    acks = [a for a in parser.acks()]
    assert len(acks) == 3 and b"MSA|AE|503|segment separators missing" in acks[0]


@pytest.mark.parametrize(
    ("rule", "expected"), [("refuse", (None, None)), ("code", (97.0, None)), ("name", (None, 97.0))]
)
def test_conflict_rule_is_per_dialect_and_local_map_can_set_it(
    rule: str, expected: tuple[float | None, float | None]
) -> None:
    dialect = load_dialect("mdc", {"dialect": {"conflict": rule}})
    entry, conflict = resolve(dialect, "150456", "MDC_PRESS_CUFF_SYS")
    msg = (
        "MSH|^~\\&|GW|GW|||20261125090000||ORU^R01|1|P|2.6\n"
        "OBX|1|NM|150456^MDC_PRESS_CUFF_SYS^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||R\n"
    )
    r = parse_one(msg, dialect="mdc", dialect_map={"dialect": {"conflict": rule}})
    got = (r.spo2, None if r.nibp_sys is None else 97.0)
    if rule == "name":  # NIBP in percent: the unit does not fit, null with a flag
        assert r.nibp_sys is None and "nibp_sys_unit_unknown" in r.quality
        assert entry is not None and entry.field == "nibp_sys"
    else:
        assert got == expected
        assert (entry is None) == (rule == "refuse") and bool(conflict) == (rule == "refuse")


def test_local_map_adds_a_code_without_code_changes(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text(
        '# our gateway sends its own code for axillary temperature\n'
        '[codes]\n"90001" = { field = "temp_c", site = "axillary", unit = "degC" }\n'
        '[dialect]\nsentinels = [-999]\n'
    )
    local = read_map_file(path)
    msg = (
        "MSH|^~\\&|GW|GW|||20261125090000||ORU^R01|1|P|2.6\n"
        "OBX|1|NM|90001^AXT^LOCAL||36.6||||||R\n"
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||-999|%|||||R\n"
    )
    r = parse_one(msg, dialect_map=local)
    assert (r.temp_c, r.temp_site) == (36.6, "axillary")
    assert r.spo2 is None and "spo2_no_value" in r.quality
    without = parse_one(msg)
    assert without.temp_c is None and without.spo2 is None
    assert "spo2_out_of_range" in without.quality


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[codes]\n"1" = { field = "bp" }\n', "codes.1.field: 'bp' is not a vital"),
        ('[codes]\n"1" = { field = "spo2", unit = "mmHg" }\n', None),
        ('[codes]\n"1" = { field = "spo2", colour = "red" }\n', "unknown key(s) colour"),
        ('[dialect]\nconflict = "guess"\n', "dialect.conflict: 'guess'"),
        ('[units]\n"X" = "furlong"\n', "units.X: 'furlong'"),
        ('[codes]\n"1" = { field = "spo2", site = "oral" }\n', "codes.1.site: only for temp_c"),
        ("[nonsense]\n", "unknown section(s) nonsense"),
        ("not toml = = =\n", "not valid TOML"),
    ],
)
def test_bad_local_map_names_file_and_key(tmp_path: Path, text: str, message: str | None) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    if message is None:  # a valid file: a code may carry any canonical unit
        DialectSet("mdc", read_map_file(path))
        return
    with pytest.raises(DialectError) as info:
        DialectSet("mdc", read_map_file(path))
    assert message in str(info.value)
    if "TOML" in message:
        assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("msh", "expected"),
    [
        ("MSH|^~\\&|||||||ORU^R01|204|P|2.3.1|", "mindray-legacy"),
        ("MSH|^~\\&|||||||ORU^R01|1001|P|2.3.1|", "mdc"),  # not a legacy kind: not guessed
        ("MSH|^~\\&|||||||ORU^R01|204|P|2.6|", "mdc"),
        ("MSH|^~\\&|Mindray|BeneVision N12|||2026||ORU^R01|1001|P|2.3.1", "mindray-legacy"),
        ("MSH|^~\\&|MINDRAY_^00A037000000^EUI-64|MINDRAY|||2026||ORU^R01|1|P|2.6", "mdc"),
        ("MSH|^~\\&|NIHON KOHDEN|NIHON KOHDEN|A|F|2026||ORU^R01^ORU_R01|2|P|2.4", "nihon-kohden"),
        ("MSH|^~\\&|COMEN^NC12|COMEN|ROOMCTL||2026||ORU^R01^ORU_R01|C1|P|2.6", "comen"),
        ("MSH|^~\\&|GE B40|GE Healthcare|ROOMCTL||2026||ORU^R01|G1|P|2.6", "mdc"),
    ],
)
def test_auto_detection_from_the_header_only(msh: str, expected: str) -> None:
    parser = Hl7Parser(fixed_clock)
    parser.feed_message((msh + "\rOBX||NM|101^HR|2101|60||||||F\r").encode())
    assert parser.dialects_seen == {expected: 1}


def test_fixed_dialect_overrides_detection() -> None:
    parser = Hl7Parser(fixed_clock, dialect="mdc")
    parser.feed_message(b"MSH|^~\\&|||||||ORU^R01|204|P|2.3.1|\rOBX||NM|160^SpO2|2103|-100||||||F\r")
    (r,) = list(parser.readings())
    assert parser.dialects_seen == {"mdc": 1}
    assert r.spo2 is None and "spo2_out_of_range" in r.quality  # -100 is no sentinel in mdc


def test_unknown_dialect_name_is_a_clear_error() -> None:
    with pytest.raises(DialectError, match="unknown monitor dialect 'philips'"):
        DialectSet("philips")


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("20261125081205", "2026-11-25T08:12:05"),
        ("20261125124738000+0800", "2026-11-25T12:47:38+08:00"),  # Mindray: ms, no dot
        ("20261125124738.123+0800", "2026-11-25T12:47:38+08:00"),
        ("202611250812", "2026-11-25T08:12:00"),
        ("00000000000000", None),
        ("0", None),
        ("2026-11-25", None),
    ],
)
def test_hl7_times(text: str, iso: str | None) -> None:
    moment = hl7_time(text)
    assert (moment.isoformat() if moment else None) == iso


# -- the room: config, alerts, payload ----------------------------------------------------


def test_config_takes_a_dialect_and_checks_the_local_map(tmp_path: Path) -> None:
    good = tmp_path / "map.toml"
    good.write_text('[codes]\n"90001" = { field = "temp_c", site = "oral" }\n')
    monitor = {"protocol": "hl7", "transport": "mllp-listen", "address": "127.0.0.1:2575"}
    cfg = config(monitor={**monitor, "dialect": "nihon-kohden", "dialect_map": str(good)})
    assert cfg.monitor.dialect == "nihon-kohden" and cfg.monitor.dialect_map == good
    bad = tmp_path / "bad.toml"
    bad.write_text('[codes]\n"1" = { field = "bp" }\n')
    with pytest.raises(ConfigError) as info:
        config(monitor={**monitor, "dialect_map": str(bad)})
    assert "monitor.dialect_map: codes.1.field: 'bp' is not a vital" in str(info.value)
    with pytest.raises(ConfigError, match=r"monitor\.dialect: must be one of .auto., .mdc."):
        config(monitor={**monitor, "dialect": "philips"})
    masimo = {"protocol": "masimo", "address": "/dev/ttyUSB0", "dialect": "mdc"}
    with pytest.raises(ConfigError, match="apply to protocol hl7 only"):
        config(monitor=masimo)


def test_config_dialect_names_match_the_packaged_tables() -> None:
    assert set(get_args(MonitorDialect)) == {"auto", *DIALECTS}


def test_stale_nibp_and_demo_mode_never_raise_an_alert() -> None:
    room = Room()
    room.phase("pre_check", "infusion")
    stale = Reading("hl7", 0.0, nibp_sys=210.0, age_s=(("nibp_sys", 900.0),))
    out = room.feed(ReadingReceived(stale))
    assert not events(out, "alert_raised")
    body = bodies(out, VitalsMessage)[0]
    assert body["nibp_sys"] == 210.0 and body["age_s"] == {"nibp_sys": 900.0}
    demo = Reading("hl7", 0.0, nibp_sys=210.0, quality=(DEMO_FLAG,))
    assert not events(room.feed(ReadingReceived(demo)), "alert_raised")
    fresh = Reading("hl7", 0.0, nibp_sys=210.0, age_s=(("nibp_sys", 20.0),))
    assert events(room.feed(ReadingReceived(fresh)), "alert_raised")[0]["detail"]["value"] == 210.0


def test_new_fields_left_out_of_the_wire_when_absent() -> None:
    plain = as_message(Reading("hl7", 0.0, spo2=97.0))
    wire = json.loads(plain.model_dump_json(exclude=wire_exclude(plain)))
    assert not set(OPTIONAL_VITALS_FIELDS) & set(wire)
    (r,), _ = readings_of("nihon_kohden_two_groups.hl7")
    full = as_message(r)
    wire = json.loads(full.model_dump_json(exclude=wire_exclude(full)))
    assert wire["age_s"]["nibp_sys"] == 1080.0 and "alarm_details" not in wire


def test_decode_cli_with_dialect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(H / "mindray_legacy_t8_session.hl7")
    assert cli_main(["monitor", "decode", "--protocol", "hl7", "--dialect", "mdc", path]) == 0
    out, err = capsys.readouterr()
    assert "hl7 dialects: mdc x11" in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert not any(row["nibp_sys"] for row in rows)  # 170 is no MDC code: nothing guessed
    assert cli_main(["monitor", "decode", "--protocol", "hl7", path]) == 0
    out, err = capsys.readouterr()
    assert "mindray-legacy x11" in err and '"nibp_sys":131.0' in out
    assert "600^PR unit -: x1, e.g. 74" in err  # what a local map file could name
    bad = tmp_path / "bad.toml"
    bad.write_text("[dialect]\nconflict = 1\n")
    code = cli_main(["monitor", "decode", "--protocol", "hl7", "--dialect-map", str(bad), path])
    assert code == 2 and "dialect.conflict" in capsys.readouterr().err


def test_simulated_hl7_monitor_dates_its_held_nibp() -> None:
    """The simulator's NIBP rows carry the cuff's time (OBX-14), so they arrive with an age."""
    from firmware_py.monitors.device_encoders import hl7_oru
    from firmware_py.monitors.session_trace import NIBP_INTERVAL_S, KetamineTrace

    point = KetamineTrace(seed=1).at(NIBP_INTERVAL_S + 200.0)
    assert point.nibp_t == NIBP_INTERVAL_S
    parser = Hl7Parser(fixed_clock)
    parser.feed_message(hl7_oru(point, "S1", 1_764_057_600.0, nibp_time=1_764_057_400.0))
    (r,) = list(parser.readings())
    assert dict(r.age_s)["nibp_sys"] == 200.0 and dict(r.age_s)["spo2"] == 0.0
    assert r.alert_values()["nibp_sys"] is None and r.nibp_sys is not None


def test_a_reset_device_clock_gives_no_age_and_demo_alarms_are_not_for_alerts() -> None:
    msg = (
        "MSH|^~\\&|GW|GW|||20261125090000||ORU^R01|1|D|2.6\n"
        "OBX|1|NM|150301^MDC_PRESS_CUFF_SYS^MDC||150|266016^MDC_DIM_MMHG^MDC||H|||R|||19900101\n"
    )
    r = parse_one(msg)
    assert r.nibp_sys == 150.0 and r.age_s == () and "nibp_sys_time_invalid" in r.quality
    assert r.alarms == ("nibp_sys_high",) and r.alert_alarms() == ()  # MSH-11 D: demo
    as_message(r)


def test_publisher_drops_an_optional_field_the_contract_refuses() -> None:
    from controller.publisher import _drop_invalid_vitals

    fields = {"protocol": "hl7", "spo2": 97.0, "age_s": {"spo2": -5.0}}
    try:
        VitalsMessage(site="s", room="r", epoch="0" * 16, seq=1, ts="2026-11-25T09:00:00Z",
                      clock_synced=True, **fields)  # fmt: skip
    except ValueError as exc:
        fixed = _drop_invalid_vitals(fields, exc)  # type: ignore[arg-type]
    assert fixed["age_s"] is None and "invalid_age_s" in fixed["quality"]
    assert fixed["spo2"] == 97.0
