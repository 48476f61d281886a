"""`make_parser`: the one place that turns a protocol name into a sans-IO parser."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from firmware_py.monitors.dialect import AUTO
from firmware_py.monitors.hl7_pcd01 import Hl7Parser
from firmware_py.monitors.masimo import MasimoParser
from firmware_py.monitors.nonin import NoninParser
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
        return MasimoParser(clock)
    if protocol == "nonin-df2":
        return NoninParser("df2", clock)
    if protocol == "nonin-df7":
        return NoninParser("df7", clock)
    if protocol == "hl7":
        return Hl7Parser(clock, dialect=dialect, dialect_map=dialect_map)
    expected = ", ".join(PROTOCOLS)
    raise ValueError(f"unknown monitor protocol {protocol!r}; expected one of {expected}")
