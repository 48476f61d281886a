"""Is the Pi's clock synchronised? Read from the kernel, as `timedatectl` does.

chrony/ntpd/systemd-timesyncd clear the kernel's STA_UNSYNC flag once they discipline the
clock; `adjtimex()` with no modes set only reads, needs no privilege, and returns
TIME_ERROR (5) while the clock is unsynchronised. A Pi has no RTC, so after a cold boot
without network its clock may be far off: every message carries `clock_synced` so the
logger can order by `seq` instead of trusting `ts`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Literal

TIME_ERROR = 5
ClockMode = Literal["auto", "synced", "unsynced"]


class _Timex(ctypes.Structure):
    # struct timex is 208 bytes on 64-bit Linux; only `modes` (first int) must be zero.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 252)]


def kernel_clock_synced() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = _Timex()
        state = libc.adjtimex(ctypes.byref(buf))
    except (OSError, AttributeError):
        return False
    return bool(state >= 0 and state != TIME_ERROR)


class ClockSync:
    """`auto` asks the kernel (cached for a few seconds by the caller); the others are fixed."""

    def __init__(self, mode: ClockMode = "auto"):
        self.mode = mode

    def synced(self) -> bool:
        if self.mode == "synced":
            return True
        if self.mode == "unsynced":
            return False
        return kernel_clock_synced()
