"""MLLP framing (HL7 over TCP or serial): `<VT 0x0B> message <FS 0x1C><CR 0x0D>`.

How this works: `MllpDeframer.feed()` buffers bytes and returns the complete messages.
Bytes before a VT are discarded (resynchronisation). A frame ends at FS CR only: a lone
FS inside a message (seen in a public Masimo Patient SafetyNet sample) stays part of it.
If a new `VT MSH` starts before the end marker, the unfinished frame is dropped and
counted, and parsing restarts at the new VT. A frame longer than `max_frame` is dropped.
"""

from __future__ import annotations

VT = 0x0B
FS = 0x1C
CR = 0x0D
START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME = 256 * 1024


def mllp_frame(message: bytes) -> bytes:
    """Wrap one HL7 message in MLLP start and end bytes."""
    return START + message + END


class MllpDeframer:
    """Cuts an MLLP byte stream into messages; never raises on input."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.frames_dropped = 0
        self.bytes_discarded = 0
        self._buf = bytearray()
        self._scan_from = 1

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        messages: list[bytes] = []
        buf = self._buf
        while buf:
            if buf[0] != VT:
                start = buf.find(START)
                drop = start if start >= 0 else len(buf)
                self.bytes_discarded += drop
                del buf[:drop]
                self._scan_from = 1
                continue
            end = buf.find(END, self._scan_from)
            restart = buf.find(b"\x0bMSH", self._scan_from, end if end >= 0 else len(buf))
            if restart > 0:  # a new frame began before this one ended
                self.frames_dropped += 1
                self.bytes_discarded += restart
                del buf[:restart]
                self._scan_from = 1
                continue
            if end < 0:
                if len(buf) > self.max_frame:
                    self.frames_dropped += 1
                    self.bytes_discarded += len(buf)
                    buf.clear()
                    self._scan_from = 1
                else:  # keep scanning from near the tail next time (FS may be split)
                    self._scan_from = max(1, len(buf) - 4)
                break
            messages.append(bytes(buf[1:end]))
            del buf[: end + 2]
            self._scan_from = 1
        return messages

    @property
    def pending(self) -> int:
        return len(self._buf)
