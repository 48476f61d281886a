"""The monitor fixtures of tests/data/monitors/ and how the `test_monitor_*` modules read them:
the bytes a monitor would send for a file, its protocol, feeding a parser whole or one byte at a
time (with a fixed clock), garbage to put around it, and a reading in the contract's envelope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from contract.messages import VitalsMessage
from contract.vitals import Reading, vitals_fields
from firmware_py.monitors.hl7_pcd01 import split_plain_messages
from firmware_py.monitors.mllp import mllp_frame
from firmware_py.monitors.parser_base import ParserBase
from firmware_py.monitors.parsers import make_parser

DATA = Path(__file__).resolve().parents[1] / "data" / "monitors"


def fixed_clock() -> float:
    return 1_764_057_600.0


def parse_hex(text: str) -> bytes:
    """`--hex` input: whitespace-separated byte pairs; lines starting with # ignored."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return bytes(int(tok, 16) for tok in " ".join(lines).split())


def load(path: Path) -> bytes:
    """The bytes a monitor would send for this fixture file."""
    raw = path.read_bytes()
    if path.suffix == ".hex":
        return parse_hex(raw.decode())
    if path.suffix in (".hl7", ".txt") and path.parent.name == "hl7":
        messages = split_plain_messages(raw) or [raw]
        return b"".join(mllp_frame(m) for m in messages)
    return raw


def protocol_for(path: Path) -> str:
    if path.parent.name == "nonin":
        return "nonin-" + path.name[:3]
    return "masimo" if path.parent.name == "masimo" else "hl7"


def fixture_files() -> list[Path]:
    files = [p for p in sorted(DATA.glob("*/*")) if p.suffix in (".txt", ".hex", ".hl7", ".mllp")]
    assert len(files) >= 19
    return files


def feed(protocol: str, data: bytes, mode: str = "whole") -> tuple[list[Reading], ParserBase]:
    parser = make_parser(protocol, clock=fixed_clock)
    readings: list[Reading] = []
    if mode == "bytewise":
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
            readings.extend(parser.readings())
    else:
        parser.feed(data)
        readings.extend(parser.readings())
    return readings, parser


GARBAGE: dict[str, tuple[bytes, bytes]] = {
    "masimo": (b"\xff\xfe\x00garbage SPO2=12 BPM=\r\n", b"\x00\x01 trailing junk, no line end"),
    "nonin-df2": (b"\x00\x13\x37\xfe\x55\xaa\x00", b"\x01\x81\x02"),
    "nonin-df7": (b"\x00\x13\x37\x7e\x55\x2a\x00", b"\x81\x02"),
    "hl7": (b"junk\x1c\r\x00MSH|not framed\r", b"\x0bMSH|^~\\&|partial frame, never ends"),
}


def with_garbage(protocol: str, data: bytes) -> bytes:
    before, after = GARBAGE[protocol]
    return before + data + after


def as_message(reading: Reading) -> VitalsMessage:
    """The reading in the contract's envelope: proves every value is publishable."""
    return VitalsMessage(
        site="test",
        room="r1",
        epoch="0000000000000001",
        seq=1,
        ts=datetime.now(UTC),
        clock_synced=True,
        **vitals_fields(reading),
    )
