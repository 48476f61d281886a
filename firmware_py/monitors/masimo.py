"""Masimo "ASCII 1" serial output (Rad-8, Radical-5/7, Rad-97, Root): a sans-IO parser.

How this works: bytes are buffered and cut into lines at any CR or LF (captures mix them
and leave blank lines). A line is a record when it starts with `MM/DD/YY HH:MM:SS` and
then holds space-separated `KEY=VALUE` tokens that include `SPO2=` and `BPM=`. Keys are
read by name, whatever the model's field set; unknown keys are ignored. Dash-filled
values (`---`, `--.-`, `+--`) mean "no value" and become None with a quality flag.
ALARM and EXC are hex bit fields: decoded to names, and the raw text is kept.

The trend-download text printed in Masimo manuals (`SpO2=097 PR=069 PI=04.69 EXC=800:SET`,
EXC as 3 or 8 hex digits followed by names) is read the same way when a line carries the
date/time prefix: `PR` stands for `BPM`, the names after `:` are ignored (the hex decides);
a line without the prefix is refused (counted), and `SpO2=000` is null (`spo2_zero`).

There is no checksum, so structure and ranges are the check. A line that fails is counted
in `frames_rejected`. The first line after opening a port is usually partial: the first
line is dropped when it fails the checks (or always, with `drop_first_line=True`) and is
not counted as rejected.

Sources: protocols/monitor-protocols.md section 1 (OpenICE `poxrad_discrete.h` bit maps,
`remkolems/masimo-datacapture`, `yahnatan/pulseox`).
"""

from __future__ import annotations

import re
import time

from contract.vitals import Reading, check_vital, parse_number
from firmware_py.monitors.parser_base import Clock, ParserBase

MAX_LINE = 512
_PREFIX = re.compile(rb"\d\d/\d\d/\d\d \d\d:\d\d:\d\d")

# ALARM bits (hex): OpenICE poxrad_discrete.h; unofficial (Masimo keeps the map under NDA).
ALARM_BITS: dict[int, str] = {
    0x0001: "spo2_high",
    0x0002: "spo2_low",
    0x0004: "pulse_rate_high",
    0x0008: "pulse_rate_low",
    0x0010: "alarm_active",
    0x0020: "alarm_silenced",
    0x0040: "low_battery",
    0x0100: "spco_high",
    0x0200: "spco_low",
    0x0400: "spmet_high",
    0x0800: "spmet_low",
    0x1000: "desat_index",
    0x2000: "pi_rate_of_change",
}
# EXC bits (hex). 0x800 is "Masimo SET", the normal mode: not a fault, not reported.
EXC_BITS: dict[int, str] = {
    0x000001: "no_sensor",
    0x000002: "defective_sensor",
    0x000004: "low_perfusion",
    0x000008: "pulse_search",
    0x000010: "interference",
    0x000020: "sensor_off",
    0x000040: "ambient_light",
    0x000080: "unrecognized_sensor",
    0x000100: "incompatible_sensor",
    0x000400: "low_signal_iq",
    0x001000: "no_cable",
    0x002000: "cable_life_expired",
    0x004000: "incompatible_cable",
    0x008000: "unrecognized_cable",
    0x010000: "defective_cable",
    0x020000: "sensor_calibrating",
    0x040000: "sensor_life_expired",
    0x080000: "emitter_temp_out_of_range",
    0x100000: "sensor_current_limit",
    0x200000: "spco_low_confidence",
    0x400000: "spmet_low_confidence",
}
EXC_MASIMO_SET = 0x000800
EXC_RESERVED = 0x000200
# Exceptions under which the numbers on the wire do not describe the patient.
EXC_INVALIDATES = (
    0x000001 | 0x000002 | 0x000008 | 0x000020 | 0x000080 | 0x000100 | 0x001000 | 0x004000
    | 0x008000 | 0x010000 | 0x020000 | 0x040000
)
_FIELDS = {"SPO2": "spo2", "BPM": "pulse_rate", "PI": "pi"}


def decode_bits(raw: str, table: dict[int, str], ignore: int = 0) -> tuple[int | None, list[str]]:
    """Hex bit field to (value, names); unknown set bits become `bit_0x...`."""
    if not raw or len(raw) > 16:
        return None, []
    try:
        value = int(raw, 16)
    except ValueError:
        return None, []
    names = []
    bit = 1
    while bit <= value:
        if value & bit and not bit & ignore:
            names.append(table.get(bit, f"bit_{bit:#x}"))
        bit <<= 1
    return value, names


def masimo_value(raw: str) -> tuple[float | None, bool]:
    """(number, is_dashes). A dash after an optional leading sign means "no value"."""
    text = raw[:-1] if raw.endswith("%") else raw
    body = text[1:] if text[:1] in ("+", "-") else text
    if "-" in body or not body:
        return None, True
    return parse_number(text), False


class MasimoParser(ParserBase):
    """Sans-IO parser for Masimo ASCII 1 records; `feed()` bytes, then drain `readings()`."""

    protocol = "masimo"

    def __init__(self, clock: Clock = time.time, *, drop_first_line: bool = False) -> None:
        super().__init__(clock)
        self._buf = bytearray()
        self._first_line = True
        self._drop_first = drop_first_line
        self._overflowing = False

    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            cut = _line_end(self._buf)
            if cut < 0:
                break
            line = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            if self._overflowing:  # tail of an over-long line: part of the same junk
                self._overflowing = False
                self.bytes_discarded += len(line)
                continue
            self._line(line)
        if len(self._buf) > MAX_LINE:
            self.bytes_discarded += len(self._buf)
            self._buf.clear()
            if not self._overflowing:
                self.frames_rejected += 1
            self._overflowing = True
            self._first_line = False

    def _line(self, line: bytes) -> None:
        line = line.strip(b" \t\x00")
        if not line:
            return
        first, self._first_line = self._first_line, False
        reading = self._record(line)
        if first and (self._drop_first or reading is None):
            self.bytes_discarded += len(line)
            return
        if reading is None:
            self.frames_rejected += 1
            return
        self.frames_accepted += 1
        self._emit(reading)

    def _record(self, line: bytes) -> Reading | None:
        if _PREFIX.match(line) is None or (len(line) > 17 and line[17:18] != b" "):
            return None
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            return None
        fields: dict[str, str] = {}
        last = ""
        for token in text[18:].split():
            key, sep, value = token.partition("=")
            if not sep and last == "EXC" and ":" in fields["EXC"]:
                continue  # more words of the trend download's exception names
            if not sep or not key:
                return None
            last = key.upper()
            fields[last] = value
        if "BPM" not in fields and "PR" in fields:  # trend download: `PR=069` (issue 18)
            fields["BPM"] = fields["PR"]
        if "SPO2" not in fields or "BPM" not in fields:
            return None
        quality: list[str] = []
        values: dict[str, float | None] = {}
        for key, name in _FIELDS.items():
            raw = fields.get(key)
            if raw is None:
                values[name] = None
                continue
            number, dashes = masimo_value(raw)
            if number is None and not dashes:
                return None  # junk where a number belongs: a damaged line
            values[name] = check_vital(name, number, quality)
        if "spo2_out_of_range" in quality or "pulse_rate_out_of_range" in quality:
            return None  # SpO2 0-100, BPM 0-300 are structural checks (no checksum)
        bpm = values["pulse_rate"]
        if bpm is not None and bpm > 300:
            return None
        alarm_raw = fields.get("ALARM")
        exc_raw = fields.get("EXC")
        alarm_value, alarms = decode_bits(alarm_raw or "", ALARM_BITS)
        # The trend download prints the names after the hex (`EXC=800:SET`): the hex decides.
        exc_hex = (exc_raw or "").partition(":")[0]
        exc_value, exc_names = decode_bits(exc_hex, EXC_BITS, EXC_MASIMO_SET | EXC_RESERVED)
        if (alarm_raw and alarm_value is None) or (exc_raw and exc_value is None):
            quality.append("bad_status_field")
        quality.extend(exc_names)
        if exc_value is not None and exc_value & EXC_INVALIDATES:
            for name in ("spo2", "pulse_rate", "pi"):
                if values[name] is not None:
                    values[name] = None
                    quality.append(f"{name}_invalid_status")
        return Reading(
            protocol=self.protocol,
            received_at=self.clock(),
            device_time=text[:17],
            spo2=values["spo2"],
            pulse_rate=values["pulse_rate"],
            pi=values["pi"],
            alarms=tuple(alarms),
            quality=tuple(quality),
            alarm_raw=alarm_raw[:64] if alarm_raw else None,
            exc_raw=exc_raw[:64] if exc_raw else None,
        )


def _line_end(buf: bytearray) -> int:
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)
