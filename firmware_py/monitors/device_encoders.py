"""Bytes a bedside monitor would send for one trace point: Masimo, Nonin DF2/DF7, HL7.

Used by the simulators (simulate.py) and the benchmark. `sensor_off=True` says "no
oximetry value" each protocol's own way (dashes + EXC bits, sentinels + status bits, an
empty OBX-5 with OBX-11 `X`). Written from protocols/monitor-protocols.md.
"""

from __future__ import annotations

import time

from firmware_py.monitors.mllp import mllp_frame
from firmware_py.monitors.session_trace import TracePoint

MASIMO_SN = "0000056661"
PCD01_PROFILE = "PCD_DEC_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
_BPM = "264864^MDC_DIM_BEAT_PER_MIN^MDC"
_MMHG = "266016^MDC_DIM_MMHG^MDC"
HL7_ROWS = [  # OBX-3, OBX-4, trace field, OBX-6
    ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.2.1.1", "spo2", "262688^MDC_DIM_PERCENT^MDC"),
    ("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "1.2.1.2", "pulse_rate", _BPM),
    ("147842^MDC_ECG_HEART_RATE^MDC", "1.1.1.1", "heart_rate", _BPM),
    ("150301^MDC_PRESS_CUFF_SYS^MDC", "1.3.1.1", "nibp_sys", _MMHG),
    ("150302^MDC_PRESS_CUFF_DIA^MDC", "1.3.1.2", "nibp_dia", _MMHG),
    ("150303^MDC_PRESS_CUFF_MEAN^MDC", "1.3.1.3", "nibp_mean", _MMHG),
    ("151562^MDC_RESP_RATE^MDC", "1.4.1.1", "resp_rate", "264928^MDC_DIM_RESP_PER_MIN^MDC"),
    ("151712^MDC_CONC_AWAY_CO2_EXP^MDC", "1.5.1.1", "etco2", _MMHG),
    ("150344^MDC_TEMP^MDC", "1.6.1.1", "temp_c", "268192^MDC_DIM_DEGC^MDC"),
]


def masimo_line(point: TracePoint, device_time: float, sensor_off: bool = False) -> bytes:
    """One Rad-8 style ASCII 1 record, CR LF terminated."""
    stamp = time.strftime("%m/%d/%y %H:%M:%S", time.gmtime(device_time))
    if sensor_off:
        spo2, bpm, pi, alarm, exc = "---", "---", "--.--", 0x0010, 0x000821
    else:
        spo2, bpm, pi = f"{point.spo2:03.0f}", f"{point.pulse_rate:03.0f}", f"{point.pi:05.2f}"
        alarm = 0x0012 if point.spo2 < 90 else 0
        exc = 0x000800
    return (
        f"{stamp} SN={MASIMO_SN} SPO2={spo2}% BPM={bpm} PI={pi}% SPCO=--.-% SPMET=--.-% "
        f"DESAT=-- PIDELTA=+-- ALARM={alarm:04X} EXC={exc:06X}\r\n"
    ).encode("ascii")


def nonin_packet(
    fmt: str, point: TracePoint, beat_phase: int = 0, sensor_off: bool = False
) -> bytes:
    """25 frames (one packet, 1/3 s) of Nonin DF2 or DF7."""
    if sensor_off:
        hr, spo2, status = 511, 127, 0x40
    else:
        hr, spo2, status = int(point.pulse_rate), int(point.spo2), 0x02  # green perfusion
        if point.pi < 0.5:
            status = 0x04
    out = bytearray()
    for i in range(25):
        data = {0: (hr >> 7) & 0x03, 1: hr & 0x7F, 2: spo2 & 0x7F, 3: 0x2A}.get(i, 0)
        st = 0x80 | status | (0x01 if i == 0 else 0)
        pleth = 128 + int(100 * _pulse_shape((beat_phase + i) % 60 / 60.0))
        if fmt == "df2":
            head = bytes([0x01, st, pleth & 0xFF, data])
        else:
            pleth16 = pleth * 128
            head = bytes([st, (pleth16 >> 8) & 0xFF, pleth16 & 0xFF, data])
        out += head + bytes([sum(head) & 0xFF])
    return bytes(out)


def _pulse_shape(x: float) -> float:
    return max(0.0, 1.0 - abs(x - 0.2) * 4) if x < 0.45 else 0.15 * (1 - x)


def hl7_oru(
    point: TracePoint,
    control_id: str,
    device_time: float,
    sensor_off: bool = False,
    nibp_time: float | None = None,
) -> bytes:
    """A GE-style IHE PCD-01 ORU^R01 (unframed; wrap with `mllp_frame`).

    `nibp_time` (device clock) is when the cuff measured the NIBP rows' values: their
    OBX-14, so a receiver sees how old the held blood pressure is (issue 18).
    """
    ts = _hl7_ts(device_time)
    nibp_ts = ts if nibp_time is None else _hl7_ts(nibp_time)
    segs = [
        f"MSH|^~\\&|SIM B40^00A0C8FFFE000001^EUI-64|ROOMCTL-SIM|ROOMCTL||{ts}||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.6|||NE|AL||UNICODE UTF-8|||{PCD01_PROFILE}",
        "PID|||SIM-1^^^ROOMCTL^MR||Simulated^Patient",
        f"OBR|1|{control_id}|{control_id}|182777000^monitoring of patient^SNOMED-CT|||{ts}",
        "OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X",
    ]
    for n, (code, path, name, unit) in enumerate(HL7_ROWS, start=2):
        oximetry = name in ("spo2", "pulse_rate")
        blank = sensor_off and oximetry
        value = "" if blank else _fmt(getattr(point, name))
        status = "X" if blank else "R"
        when = nibp_ts if name.startswith("nibp_") else ts
        segs.append(f"OBX|{n}|NM|{code}|{path}|{value}|{unit}|||||{status}|||{when}")
    return ("\r".join(segs) + "\r").encode("ascii")


def _hl7_ts(device_time: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(device_time)) + "+0000"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def hl7_frame(
    point: TracePoint,
    control_id: str,
    device_time: float,
    sensor_off: bool = False,
    nibp_time: float | None = None,
) -> bytes:
    return mllp_frame(hl7_oru(point, control_id, device_time, sensor_off, nibp_time))


# Mindray legacy HL7 2.3.1 (issue 18): one message per module, as in the decoded T8
# capture cited in dialect_tables/mindray_legacy.toml; only the parameter ids sourced there.
MINDRAY_PERIODIC = [  # (OBX-4 module id, [(parameter id, label, trace field)])
    ("2101", [("101", "HR", "heart_rate")]),
    ("2102", [("151", "RR", "resp_rate")]),
    ("2103", [("160", "SpO2", "spo2"), ("161", "PR", "pulse_rate"), ("162", "PI", "pi")]),
    ("2104", [("200", "T1", "temp_c")]),
]
MINDRAY_NIBP = [
    ("171", "Dia", "nibp_dia"), ("172", "Mean", "nibp_mean"), ("170", "Sys", "nibp_sys")
]
_MINDRAY_MSH = "MSH|^~\\&|||||||ORU^R01|{kind}|P|2.3.1|"


def mindray_legacy_messages(
    point: TracePoint, nibp_time: float | None, sensor_off: bool = False
) -> list[bytes]:
    """The unframed messages of one second: periodic 204s per module, the aperiodic 503
    NIBP when `nibp_time` (a new cuff measurement, device clock) is given, and a technical
    alarm 56 (`205^SpO2 Sensor Off`) with `-100` oximetry values when the sensor is off."""
    out = []
    for module, params in MINDRAY_PERIODIC:
        rows = [_MINDRAY_MSH.format(kind="204")]
        for pid, label, name in params:
            blank = sensor_off and module == "2103"
            value = "-100" if blank else _fmt(getattr(point, name))
            rows.append(f"OBX||NM|{pid}^{label}|{module}|{value}||||||F")
        out.append(("\r".join(rows) + "\r").encode("ascii"))
    if nibp_time is not None:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(nibp_time))
        rows = [_MINDRAY_MSH.format(kind="503")]
        for pid, label, name in MINDRAY_NIBP:
            value = _fmt(getattr(point, name))
            rows.append(f"OBX||NM|{pid}^{label}|2105|{value}||||||F||APERIODIC|{stamp}")
        out.append(("\r".join(rows) + "\r").encode("ascii"))
    if sensor_off:
        alarm = [_MINDRAY_MSH.format(kind="56"), "OBX||CE|4||205^SpO2 Sensor Off||||||F|"]
        out.append(("\r".join(alarm) + "\r").encode("ascii"))
    return out
