"""Nonin serial Data Format 2 and Data Format 7: a sans-IO parser.

How this works: both formats send 5-byte frames, 75 per second, 25 to a packet (one
packet every 1/3 s), with a checksum byte = sum of the first four bytes mod 256.

    DF2 (OEM III): 0x01, STATUS, PLETH, DATA, CHK
    DF7:           STATUS, PLETH_MSB, PLETH_LSB, DATA, CHK

STATUS bit7 is always 1; bit0 (SYNC) marks frame 1 of a packet. The DATA byte of each
frame carries one item, chosen by the frame's index in the packet: 1 HR MSB, 2 HR LSB,
3 SpO2, 4 firmware revision (others: averaged/extended variants, unused here).
HR = ((MSB & 0x03) << 7) | (LSB & 0x7F); HR 511 and SpO2 127 mean "no value".

The parser looks for a frame that passes the checks (start byte for DF2, STATUS bit7,
checksum); while out of sync it skips one byte at a time (counted in `bytes_discarded`).
In sync, a frame failing its checksum is rejected and the parser resynchronises. A packet
is emitted as one Reading when its 25th frame arrives; a packet cut short by a new SYNC
("missed data") or by a bad frame is rejected. Status bits of all 25 frames are ORed into
quality flags.

Sources: protocols/monitor-protocols.md section 3 (pufferfish-software TestNoninOEM3.cpp,
OpenICE `devices/nonin/.../Packet.java`, `uk.ac.ox.ibme.nonin.NoninPacket` sentinels).
"""

from __future__ import annotations

import time

from contract.vitals import Reading, check_vital
from firmware_py.monitors.parser_base import Clock, ParserBase

FRAME_LEN = 5
FRAMES_PER_PACKET = 25
MISSING_HR = 511
MISSING_SPO2 = 127
MAX_BUFFER = 4096

SYNC = 0x01
GREEN_PERFUSION = 0x02
RED_PERFUSION = 0x04
SENSOR_ALARM = 0x08
OUT_OF_TRACK = 0x10
ARTIFACT = 0x20
SENSOR_DISCONNECT = 0x40


def frame_checksum(frame: bytes | bytearray) -> int:
    return sum(frame[:4]) & 0xFF


def status_flags(status: int) -> list[str]:
    """Quality flags for the ORed STATUS bits of a packet."""
    flags = []
    if status & SENSOR_DISCONNECT:
        flags.append("sensor_disconnected")
    if status & OUT_OF_TRACK:
        flags.append("out_of_track")
    if status & ARTIFACT:
        flags.append("artifact")
    if status & SENSOR_ALARM:
        flags.append("sensor_alarm")
    perf = status & (GREEN_PERFUSION | RED_PERFUSION)
    if perf == RED_PERFUSION:
        flags.append("low_perfusion")
    elif perf == GREEN_PERFUSION | RED_PERFUSION:
        flags.append("marginal_perfusion")
    return flags


class NoninParser(ParserBase):
    """Nonin DF2 (`frame_format="df2"`) or DF7 (`"df7"`); one Reading per 25-frame packet."""

    def __init__(self, frame_format: str = "df2", clock: Clock = time.time) -> None:
        super().__init__(clock)
        if frame_format not in ("df2", "df7"):
            raise ValueError(f"unknown Nonin data format {frame_format!r}")
        self.frame_format = frame_format
        self.protocol = f"nonin-{frame_format}"
        self.packets_missed = 0
        self._status_at = 1 if frame_format == "df2" else 0
        self._buf = bytearray()
        self._in_sync = False
        self._packet: list[bytes] = []

    def _valid(self, frame: bytes | bytearray) -> bool:
        if self.frame_format == "df2" and frame[0] != 0x01:
            return False
        return bool(frame[self._status_at] & 0x80) and frame_checksum(frame) == frame[4]

    def feed(self, data: bytes) -> None:
        self._buf += data
        pos = 0
        buf = self._buf
        end = len(buf)
        while end - pos >= FRAME_LEN:
            frame = bytes(buf[pos : pos + FRAME_LEN])
            if self._valid(frame):
                self._in_sync = True
                self.frames_accepted += 1
                self._frame(frame)
                pos += FRAME_LEN
                continue
            if self._in_sync:
                self.frames_rejected += 1
                self._in_sync = False
                self._abort_packet()
            self.bytes_discarded += 1
            pos += 1
        del buf[:pos]
        if len(buf) > MAX_BUFFER:  # cannot happen with 5-byte frames; a guard all the same
            self.bytes_discarded += len(buf)
            buf.clear()

    def _abort_packet(self) -> None:
        if self._packet:
            self.packets_missed += 1
            self._packet = []

    def _frame(self, frame: bytes) -> None:
        status = frame[self._status_at]
        if status & SYNC:
            if self._packet:  # a new packet before 25 frames: missed data
                self.packets_missed += 1
                self.frames_rejected += 1
            self._packet = [frame]
        elif self._packet:
            self._packet.append(frame)
        else:
            return  # mid-packet frames before the first SYNC: wait for a packet start
        if len(self._packet) == FRAMES_PER_PACKET:
            packet, self._packet = self._packet, []
            self._emit(self._reading(packet))

    def _reading(self, packet: list[bytes]) -> Reading:
        status = 0
        for frame in packet:
            status |= frame[self._status_at]
        hr_msb, hr_lsb, spo2_byte = packet[0][3], packet[1][3], packet[2][3]
        hr_raw = ((hr_msb & 0x03) << 7) | (hr_lsb & 0x7F)
        spo2_raw = spo2_byte & 0x7F
        quality = status_flags(status)
        unusable = bool(status & (SENSOR_DISCONNECT | OUT_OF_TRACK))
        hr = None if hr_raw == MISSING_HR or unusable else float(hr_raw)
        spo2 = None if spo2_raw == MISSING_SPO2 or unusable else float(spo2_raw)
        return Reading(
            protocol=self.protocol,
            received_at=self.clock(),
            spo2=check_vital("spo2", spo2, quality),
            pulse_rate=check_vital("pulse_rate", hr, quality),
            alarms=tuple(f for f in quality if f in ("sensor_disconnected", "sensor_alarm")),
            quality=tuple(quality),
            alarm_raw=None,
            exc_raw=f"{status & 0x7E:02X}",  # ORed STATUS bits, SYNC and bit7 masked
        )
