"""HL7 v2 ORU^R01 (IHE PCD-01) and ORU^R40 (PCD-04 alarms) over MLLP: a sans-IO parser.

How this works: `feed()` passes bytes to the MLLP deframer (mllp.py); every complete
message goes to `feed_message()`, which may also be called with an unframed message
(files). The `hl7` library (python-hl7 0.4.5) splits the message into segments, fields,
repetitions and components and unescapes values; this module decides what the OBX rows
mean (hl7_codes.py), checks values, and builds the original-mode ACK itself (the library's
`create_ack` reads the wall clock and draws a random id; ours uses the injected clock and
a counter, so it is testable and works even when the message did not parse).

Every message gets an ACK, queued for `acks()` as MLLP-framed bytes: `MSA|AA` when it was
parsed (including message types we ignore), `MSA|AE` when it was not HL7 at all. A monitor
that gets no ACK re-sends (GE) and logs errors.

Values: the first usable row of a metric wins; a second row (same metric on another
channel, e.g. Comen SpO2 at 1.3.1 and 1.3.2) is flagged `<field>_duplicate`. An empty
OBX-5, OBX-11 `X`/`D`/`W`, a non-number, an out-of-range value (`-100`) or an unknown
unit gives None plus a quality flag. OBX-8 abnormal flags (L/H/LL/HH) become alarms.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import hl7
from hl7.util import unescape as hl7_unescape

from contract.vitals import Reading, check_vital, parse_number
from firmware_py.monitors import hl7_codes
from firmware_py.monitors.mllp import MllpDeframer, mllp_frame
from firmware_py.monitors.parser_base import Clock, ParserBase

MAX_QUEUED_ACKS = 256
MAX_ALARMS = 32
ABNORMAL_FLAGS = {"L": "low", "LL": "low", "<": "low", "H": "high", "HH": "high", ">": "high"}


def _get(seg: Any, field: int, comp: int = 1) -> str:
    """Field `field`, component `comp` (first repetition) of an hl7.Segment; "" if absent.

    Walks the library's containers directly (its `extract_field` builds an Accessor per
    call and raises on short paths) and unescapes with the library's `unescape`.
    """
    try:
        if field >= len(seg):
            return ""
        parts = seg[field]
        if not parts:
            return ""
        rep = parts[0]
        if isinstance(rep, str):
            value = rep if comp == 1 else ""
        elif comp > len(rep):
            return ""
        else:
            part = rep[comp - 1]
            value = part if isinstance(part, str) else str(part[0]) if part else ""
        if seg.esc in value and field > 2:
            return str(hl7_unescape(seg, value))
        return value
    except Exception:  # a container shape we did not foresee: treat as absent
        return ""


def decode_text(message: bytes) -> str:
    """UTF-8 when it is valid, else ISO 8859-1 (MSH-18 is usually one of the two)."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        text = message.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r")


def relevant_segments(text: str) -> str:
    """MSH (up to MSH-12), OBR and OBX: all this module reads; the library parses less."""
    segments = text.split("\r")
    msh = segments[0]
    sep = msh[3:4] or "|"
    keep = [sep.join(msh.split(sep, 13)[:13])]
    keep.extend(s for s in segments[1:] if s[:3] in ("OBR", "OBX"))
    return "\r".join(keep)


def split_plain_messages(data: bytes) -> list[bytes]:
    """Messages from a file saved by people: each starts at `MSH`; CR, LF or CRLF lines."""
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for line in lines:
        line = line.strip(b" \t\x0b\x1c")
        if line.startswith(b"MSH"):
            messages.append([line])
        elif line and messages:
            messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


class Hl7Parser(ParserBase):
    """PCD-01/PCD-04 messages to Readings, plus one ACK per message in `acks()`."""

    protocol = "hl7"

    def __init__(self, clock: Clock = time.time, *, application: str = "ROOMCTL") -> None:
        super().__init__(clock)
        self.application = application
        self.messages_ignored = 0
        self._deframer = MllpDeframer()
        self._dropped_seen = 0
        self._acks: deque[bytes] = deque(maxlen=MAX_QUEUED_ACKS)
        self._ack_counter = 0

    def feed(self, data: bytes) -> None:
        try:
            messages = self._deframer.feed(data)
        except Exception:  # a bug here must not kill the reader thread
            messages = []
        dropped = self._deframer.frames_dropped
        self.frames_rejected += dropped - self._dropped_seen
        self._dropped_seen = dropped
        self.bytes_discarded = self._deframer.bytes_discarded
        for message in messages:
            self.feed_message(message)

    def acks(self) -> Iterator[bytes]:
        """Drain the MLLP-framed ACKs to send back, in message order."""
        while self._acks:
            yield self._acks.popleft()

    def feed_message(self, message: bytes) -> None:
        """One unframed HL7 message (segments separated by CR, LF or CRLF)."""
        text = decode_text(message).lstrip(" \t\r\x0b")
        try:
            ok = text.startswith("MSH") and len(text) > 8
            parsed = hl7.parse(relevant_segments(text)) if ok else None
        except Exception:
            parsed = None
        if parsed is None:
            self.frames_rejected += 1
            self._acks.append(self._ack(text, "AE", "message could not be parsed"))
            return
        try:
            reading = self._reading(parsed)
        except Exception:
            self.frames_rejected += 1
            self._acks.append(self._ack(text, "AE", "message could not be interpreted"))
            return
        self.frames_accepted += 1
        self._acks.append(self._ack(text, "AA"))
        if reading is not None:
            self._emit(reading)

    def _reading(self, msg: Any) -> Reading | None:
        msh = msg[0]
        kind, trigger = _get(msh, 9, 1).strip().upper(), _get(msh, 9, 2).strip().upper()
        if kind != "ORU" or trigger not in ("R01", "R40"):
            self.messages_ignored += 1
            return None
        values: dict[str, float | None] = {}
        quality: list[str] = []
        alarms: list[str] = []
        events: list[str] = []
        device_time = ""
        last_field = ""
        for seg in msg:
            name = str(seg[0]) if len(seg) else ""
            if name == "OBR" and not device_time:
                device_time = _get(seg, 7)
            if name != "OBX":
                continue
            code, refid = _get(seg, 3, 1), _get(seg, 3, 2)
            for text in (refid, _get(seg, 5, 1), _get(seg, 5, 2)):
                up = text.strip().upper()
                if up.startswith("MDC_EVT_") and len(events) < MAX_ALARMS:
                    events.append(up)
                    prefix = f"{last_field}_" if last_field else ""
                    alarms.append(prefix + up[len("MDC_EVT_") :].lower())
            field = hl7_codes.field_for(code, refid)
            if field is None:
                continue
            last_field = field
            if not device_time:
                device_time = _get(seg, 14)
            value = self._obx_value(seg, field, quality)
            flag = ABNORMAL_FLAGS.get(_get(seg, 8).strip().upper())
            if flag and len(alarms) < MAX_ALARMS:
                alarms.append(f"{field}_{flag}")
            if field in values:
                if values[field] is None:
                    values[field] = value
                elif value is not None and f"{field}_duplicate" not in quality:
                    quality.append(f"{field}_duplicate")
            else:
                values[field] = value
        if trigger == "R40":
            quality.append("alarm_report")
        elif not values:
            self.messages_ignored += 1
            return None
        for field, value in values.items():
            if value is not None:
                quality[:] = [
                    q for q in quality
                    if not q.startswith(f"{field}_") or q == f"{field}_duplicate"
                ]
        if not device_time:
            device_time = _get(msh, 7)
        return Reading(
            protocol=self.protocol,
            received_at=self.clock(),
            device_time=device_time.strip()[:64] or None,
            alarms=tuple(dict.fromkeys(a[:64] for a in alarms)),
            quality=tuple(dict.fromkeys(quality))[:64],
            alarm_raw=";".join(events)[:64] or None,
            spo2=values.get("spo2"),
            pulse_rate=values.get("pulse_rate"),
            heart_rate=values.get("heart_rate"),
            pi=values.get("pi"),
            nibp_sys=values.get("nibp_sys"),
            nibp_dia=values.get("nibp_dia"),
            nibp_mean=values.get("nibp_mean"),
            resp_rate=values.get("resp_rate"),
            etco2=values.get("etco2"),
            temp_c=values.get("temp_c"),
        )

    @staticmethod
    def _obx_value(seg: Any, field: str, quality: list[str]) -> float | None:
        status = _get(seg, 11).strip().upper()
        if status in ("X", "D", "W"):
            quality.append(f"{field}_status_{status.lower()}")
            return None
        raw = _get(seg, 5, 1).strip()
        if not raw:
            quality.append(f"{field}_missing")
            return None
        number = parse_number(raw)
        if number is None:
            quality.append(f"{field}_invalid")
            return None
        unit = hl7_codes.canonical_unit([_get(seg, 6, 1), _get(seg, 6, 2)])
        converted = None if unit is None else hl7_codes.convert(field, number, unit)
        if converted is None:
            quality.append(f"{field}_unit_unknown")
            return None
        return check_vital(field, converted, quality)

    def _ack(self, text: str, code: str, error: str = "") -> bytes:
        """An original-mode ACK for `text` (which may be damaged): MSH + MSA."""
        self._ack_counter += 1
        first = text.split("\r", 1)[0]
        sep = first[3] if len(first) > 3 and first.startswith("MSH") else "|"
        if sep in "\r\n" or sep.isalnum():
            sep = "|"
        fields = first.split(sep) if first.startswith("MSH") else ["MSH"]
        enc = fields[1] if len(fields) > 1 and 1 <= len(fields[1]) <= 5 else "^~\\&"
        comp = enc[0] if enc else "^"

        def src(n: int) -> str:  # MSH-n of the source (MSH-1 is the separator itself)
            return fields[n - 1][:64] if len(fields) > n - 1 else ""

        trigger = src(9).split(comp)[1] if comp in src(9) else ""
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.clock()))
        msh = sep.join([
            "MSH", enc, self.application, "", src(3), src(4), stamp, "",
            f"ACK{comp}{trigger}{comp}ACK" if trigger else "ACK",
            f"{self.application[:8]}{self._ack_counter}", src(11) or "P", src(12) or "2.6",
        ])
        msa = sep.join(["MSA", code, src(10)] + ([error] if error else []))
        return mllp_frame(f"{msh}\r{msa}\r".encode("utf-8", "replace"))
