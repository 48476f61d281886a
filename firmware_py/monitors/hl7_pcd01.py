"""HL7 v2 ORU^R01 (IHE PCD-01) and ORU^R40 (PCD-04 alarms) over MLLP: a sans-IO parser.

How this works: `feed()` passes bytes to the MLLP deframer (mllp.py); every complete
message goes to `feed_message()`, which may also be called with an unframed message
(files). The `hl7` library (python-hl7 0.4.5) splits the message into segments, fields,
repetitions and components and unescapes values (hl7_fields.py reads them). The message's
dialect (dialect.py: fixed by the room's config, or picked from the MSH header) says what
each OBX row means (hl7_codes.py); hl7_rows.py keeps each value with its own time and the
reason for every null; hl7_alarms.py reads PCD-04 alerts and vendor alarm messages. The
original-mode ACK is built here (the library's `create_ack` reads the wall clock and draws
a random id; ours uses the injected clock and a counter, so it is testable and works even
when the message did not parse).

Every message gets an ACK, queued for `acks()` as MLLP-framed bytes: `MSA|AA` when it was
parsed (including message types we ignore), `MSA|AE` when it was not HL7 at all or its
segment separators were lost. A monitor that gets no ACK re-sends (GE) and logs errors.

Values, flags, times and alarm identifiers: docs/MONITORS.md.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import hl7

from contract.vitals import DEMO_FLAG, AlarmDetail, Reading
from firmware_py.monitors import hl7_codes
from firmware_py.monitors.dialect import AUTO, DialectSet
from firmware_py.monitors.hl7_alarms import MAX_ALARMS, AlertCollector, vendor_alarm
from firmware_py.monitors.hl7_codes import hl7_time, iso
from firmware_py.monitors.hl7_fields import field_text as _field_text
from firmware_py.monitors.hl7_fields import get as _get
from firmware_py.monitors.hl7_fields import reps as _reps
from firmware_py.monitors.hl7_rows import Rows as _Rows
from firmware_py.monitors.mllp import MllpDeframer, mllp_frame
from firmware_py.monitors.parser_base import Clock, ParserBase

MAX_QUEUED_ACKS = 256
MAX_UNMAPPED = 200
SEGMENT_IN_HEADER = re.compile(r"(OBX|OBR|PID|PV1|ORC|EVN)\|")


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

    def __init__(
        self,
        clock: Clock = time.time,
        *,
        application: str = "ROOMCTL",
        dialect: str = AUTO,
        dialect_map: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(clock)
        self.application = application
        self.dialects = DialectSet(dialect, dialect_map)
        self.messages_ignored = 0
        self.dialects_seen: dict[str, int] = {}
        # OBX-3 rows no table maps (code, name, OBX-6) -> [count, a sample OBX-5]: what a
        # technician would put in a local map file (`roomctl monitor decode` lists them).
        self.unmapped: dict[tuple[str, str, str], list[Any]] = {}
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
        first = text.split("\r", 1)[0]
        if SEGMENT_IN_HEADER.search(first):
            # The segment separators were lost: every segment ran into MSH. Refused, not
            # guessed at: a value could be read as the wrong field.
            self.frames_rejected += 1
            self._acks.append(self._ack(text, "AE", "segment separators missing"))
            return
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
        control_id = _get(msh, 10).strip()
        dialect = self.dialects.pick(
            _field_text(msh, 3), _field_text(msh, 4), _get(msh, 12), control_id
        )
        self.dialects_seen[dialect.name] = self.dialects_seen.get(dialect.name, 0) + 1
        message_kind = dialect.kind_by_control_id.get(control_id, "")
        if message_kind in ("status", "keepalive"):
            self.messages_ignored += 1
            return None
        rows = _Rows(dialect, hl7_time(_get(msh, 7)))
        collector = AlertCollector()
        vendor: list[AlarmDetail] = []
        device_time = ""
        group_time: datetime | None = None
        for seg in msg:
            name = str(seg[0]) if len(seg) else ""
            if name == "OBR":
                group_time = hl7_time(_get(seg, 7))
                if not device_time:
                    device_time = _get(seg, 7)
            if name != "OBX":
                continue
            obx14 = _get(seg, 14)
            when = hl7_time(obx14) or group_time or rows.msh_time
            stamp = iso(when) if when else None
            value_text = (_get(seg, 5, 1), _get(seg, 5, 2))
            if message_kind.startswith("alarm_"):
                if len(vendor) < MAX_ALARMS:
                    vendor.extend(vendor_alarm(dialect, message_kind, value_text, stamp))
                continue
            code, refid = _get(seg, 3, 1), _get(seg, 3, 2)
            entry, conflict = hl7_codes.resolve(dialect, code, refid)
            for vital in conflict:
                rows.quality.append(f"{vital}_code_name_conflict")
            flags = _reps(seg, 8)
            field = entry.field if entry is not None else None
            collector.add(_get(seg, 4), code, refid, value_text, flags, stamp, field)
            if entry is None or field is None:
                if not conflict and value_text[0].strip():
                    self._note_unmapped(code, refid, _get(seg, 6, 1), value_text[0])
                continue
            if not device_time:
                device_time = obx14
            rows.add(seg, entry, flags, when, value_text[0])
        details = collector.details(iso(rows.msh_time) if rows.msh_time else None)
        details.extend(rows.limit_alarms)
        details.extend(vendor)
        ages = rows.ages()
        quality = rows.finish()
        if trigger == "R40" or vendor:
            quality.append("alarm_report")
        elif not rows.values and not quality:
            self.messages_ignored += 1
            return None
        if _get(msh, 11).strip().upper() in dialect.demo_processing_ids:
            quality.append(DEMO_FLAG)
        if not device_time:
            device_time = _get(msh, 7)
        ids = tuple(dict.fromkeys(d.id[:64] for d in details))[:MAX_ALARMS]
        unique = {d.id: d for d in reversed(details)}
        values = rows.values
        return Reading(
            protocol=self.protocol,
            received_at=self.clock(),
            device_time=device_time.strip()[:64] or None,
            alarms=ids,
            quality=tuple(dict.fromkeys(quality))[:64],
            alarm_raw=";".join(collector.events)[:64] or None,
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
            observed_at=tuple((f, iso(t)) for f, t in rows.times.items()),
            age_s=ages,
            temp_site=rows.temp_site,
            alarm_details=tuple(unique[i] for i in ids),
        )

    def _note_unmapped(self, code: str, name: str, unit: str, value: str) -> None:
        key = (code.strip()[:32], name.strip()[:64], unit.strip()[:32])
        seen = self.unmapped.get(key)
        if seen is not None:
            seen[0] += 1
        elif len(self.unmapped) < MAX_UNMAPPED:
            self.unmapped[key] = [1, value.strip()[:32]]

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
