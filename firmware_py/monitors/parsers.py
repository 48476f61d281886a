"""`make_parser`: the one place that turns a protocol name into a sans-IO parser.

Each parser module is imported when its protocol is asked for: a room imports only the
parser of its own monitor (an HL7 room needs the `hl7` package, a Masimo room does not).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from firmware_py.monitors.dialect import AUTO
from firmware_py.monitors.parser_base import Clock, ParserBase

PROTOCOLS: tuple[str, ...] = ("masimo", "nonin-df2", "nonin-df7", "hl7")


def make_parser(
    protocol: str,
    clock: Clock = time.time,
    *,
    dialect: str = AUTO,
    dialect_map: Mapping[str, Any] | None = None,
) -> ParserBase:
    """A fresh parser for `protocol` (one of PROTOCOLS); ValueError for anything else.

    `dialect` and `dialect_map` (a local map file's contents) apply to `hl7` only.
    """
    if protocol == "masimo":
        from firmware_py.monitors.masimo import MasimoParser

        return MasimoParser(clock)
    if protocol in ("nonin-df2", "nonin-df7"):
        from firmware_py.monitors.nonin import NoninParser

        return NoninParser(protocol.removeprefix("nonin-"), clock)
    if protocol == "hl7":
        from firmware_py.monitors.hl7_pcd01 import Hl7Parser

        return Hl7Parser(clock, dialect=dialect, dialect_map=dialect_map)
    expected = ", ".join(PROTOCOLS)
    raise ValueError(f"unknown monitor protocol {protocol!r}; expected one of {expected}")
