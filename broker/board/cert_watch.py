"""Certificate expiry warnings for the board and `roomctl status`: 30 days ahead.

Two sources: certificate files the central host can read (the clinic CA, the broker's, the
board's HTTPS certificate, the board's and the logger's client certificates: the board's own
`--ca/--cert/--tls-cert` plus every `--watch-cert` file or folder), and each room's
`cert_not_after` from its retained health (rooms that do not publish it are simply not
listed). Files are re-read at most every `FILES_EVERY_S` (a renewed certificate clears its
warning without a restart); an unreadable file is itself a warning, never a crash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from contract.certs import cert_not_after

from .live import SiteState

WARN_DAYS = 30
FILES_EVERY_S = 3600.0
CERT_SUFFIXES = (".crt", ".pem")


@dataclass(frozen=True)
class CertExpiry:
    what: str  # "room 101", "/etc/roomctl/tls/ca.crt"
    not_after: datetime | None  # None: the file could not be read
    problem: str = ""


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in CERT_SUFFIXES and p.is_file())
        else:
            out.append(path)
    return out


def file_expiries(paths: Iterable[Path]) -> list[CertExpiry]:
    found: list[CertExpiry] = []
    for path in dict.fromkeys(_files(paths)):  # each file once, in order
        try:
            found.append(CertExpiry(str(path), cert_not_after(path)))
        except ValueError as exc:
            if "no PEM certificate" in str(exc):
                continue  # a key, a CRL: not a certificate to watch
            found.append(CertExpiry(str(path), None, str(exc).removeprefix(f"{path}: ")))
        except OSError as exc:
            found.append(CertExpiry(str(path), None, f"cannot read it: {exc.strerror}"))
    return found


def room_expiries(state: SiteState) -> list[CertExpiry]:
    found = []
    for room in state.room_ids():
        live = state.rooms.get(room)
        health = live.health if live is not None else None
        if health is not None and health.cert_not_after is not None:
            found.append(CertExpiry(f"room {room}", health.cert_not_after))
    return found


def warnings(expiries: Iterable[CertExpiry], now: datetime, days: int = WARN_DAYS) -> list[str]:
    """One line per certificate that expires within `days` (or has, or cannot be read)."""
    out = []
    for e in expiries:
        if e.not_after is None:
            out.append(f"certificate {e.what}: {e.problem}")
            continue
        left = e.not_after - now
        date = e.not_after.strftime("%Y-%m-%d")
        if left.total_seconds() <= 0:
            out.append(f"certificate of {e.what} EXPIRED on {date}: renew it now")
        elif left.days < days:
            out.append(f"certificate of {e.what} expires in {left.days} days ({date}): renew it")
    return out


class CertWatch:
    """The warnings of one board or status view: files (cached) and the rooms' health."""

    def __init__(self, paths: Iterable[Path | None], state: SiteState):
        self.paths = [p for p in paths if p is not None]
        self.state = state
        self._files: list[CertExpiry] = []
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def current(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._lock:
            if self._read_at is None or now - self._read_at >= FILES_EVERY_S:
                self._files, self._read_at = file_expiries(self.paths), now
            files = list(self._files)
        moment = datetime.fromtimestamp(now, UTC)
        return warnings([*files, *room_expiries(self.state)], moment)
