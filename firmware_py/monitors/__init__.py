"""Bedside monitor protocols: sans-IO parsers, transports and simulators.

`make_parser(protocol)` gives a parser (feed bytes, drain readings); `firmware_py.monitors.
link.MonitorLink` runs one over serial, TCP or an MLLP listener.
"""

from contract.vitals import VITAL_NAMES, Reading
from firmware_py.monitors.parsers import PROTOCOLS, make_parser

__all__ = ["PROTOCOLS", "VITAL_NAMES", "Reading", "make_parser"]
