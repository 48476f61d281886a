"""`make_parser`: the one place that turns a protocol name into a sans-IO parser."""

from __future__ import annotations

import time

from firmware_py.monitors.hl7_pcd01 import Hl7Parser
from firmware_py.monitors.masimo import MasimoParser
from firmware_py.monitors.nonin import NoninParser
from firmware_py.monitors.parser_base import Clock, ParserBase

PROTOCOLS: tuple[str, ...] = ("masimo", "nonin-df2", "nonin-df7", "hl7")


def make_parser(protocol: str, clock: Clock = time.time) -> ParserBase:
    """A fresh parser for `protocol` (one of PROTOCOLS); ValueError for anything else."""
    if protocol == "masimo":
        return MasimoParser(clock)
    if protocol == "nonin-df2":
        return NoninParser("df2", clock)
    if protocol == "nonin-df7":
        return NoninParser("df7", clock)
    if protocol == "hl7":
        return Hl7Parser(clock)
    expected = ", ".join(PROTOCOLS)
    raise ValueError(f"unknown monitor protocol {protocol!r}; expected one of {expected}")
