"""Bedside monitor protocols: sans-IO parsers, transports and simulators."""

from firmware_py.monitors.reading import VITAL_NAMES, Reading

__all__ = ["VITAL_NAMES", "Reading"]
