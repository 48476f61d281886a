"""Bedside monitor protocols: sans-IO parsers, transports and simulators.

`make_parser(protocol)` gives a parser (feed bytes, drain readings); `firmware_py.monitors.
link.MonitorLink` runs one over serial, TCP or an MLLP listener.
"""

from firmware_py.monitors.parsers import PROTOCOLS, make_parser
from firmware_py.monitors.reading import VITAL_NAMES, Reading

__all__ = ["PROTOCOLS", "VITAL_NAMES", "Reading", "make_parser"]
