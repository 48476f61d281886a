"""The outbox's size cap and a full disk. Part of `Outbox` (a mixin: the database and
counters live on the outbox).

Size cap (the policy `docs/CONTRACT.md` repeats): when the table holds `max_rows` rows,
calls, events, state and health are still always stored (never dropped); a new vitals
reading first thins the oldest stored vitals (`_thin_vitals`), deleting every second one of
the oldest `max_rows // 10` vitals rows (the oldest stretch keeps half its time
resolution). If no vitals are left to thin, the new vitals reading itself is not stored.
Every vitals row removed or refused is counted in `vitals_thinned` (`count_dropped_vitals`),
which is persisted and published in `health`. A full disk is handled the same way: the
reserve file (`ensure_ballast`, `BALLAST_BYTES`) is deleted to give SQLite room, vitals are
thinned and the write retried; a vitals reading that still cannot be stored is counted,
and a call/event that cannot be stored raises `OutboxFull` so the daemon can keep it in
memory and retry.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from controller.outbox_rows import is_disk_full

BALLAST_BYTES = 4 * 1024 * 1024
BALLAST_CHUNK = 64 * 1024  # written this much at a time


class DiskSpace:
    """Mixed into `Outbox`; the attributes and methods below are the outbox's."""

    if TYPE_CHECKING:
        _db: sqlite3.Connection
        _clock: Callable[[], float]
        _depth: int
        path: Path
        max_rows: int
        ballast_bytes: int
        _ballast: Path
        disk_full: bool
        vitals_thinned: int
        _thinned_dirty: bool

        def _meta(self, key: str, default: str) -> str: ...
        def _set_meta(self, key: str, value: str) -> None: ...
        def _rollback(self) -> None: ...

    def ensure_ballast(self) -> bool:
        """Keep a reserve file beside the database while there is room for it.

        On SQLITE_FULL the reserve is deleted, which gives SQLite room to thin vitals and
        store the calls and events that must not be lost. Called at start and periodically;
        returns True once the reserve is in place (the disk is no longer full).
        """
        if self.ballast_bytes <= 0 or self._ballast.exists():
            self.disk_full = False
            return True
        tmp = self._ballast.with_name(self._ballast.name + ".tmp")
        try:
            free = os.statvfs(self.path.parent)
            if free.f_bavail * free.f_frsize < 2 * self.ballast_bytes:
                return False
            zeros = bytes(BALLAST_CHUNK)
            with open(tmp, "wb") as f:
                # in chunks: one 4 MiB buffer was the room's peak RSS (issue 17's 45 MB)
                for start in range(0, self.ballast_bytes, BALLAST_CHUNK):
                    f.write(zeros[: min(BALLAST_CHUNK, self.ballast_bytes - start)])
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self._ballast)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        self.disk_full = False
        return True

    def _release_ballast(self) -> bool:
        try:
            self._ballast.unlink()
        except FileNotFoundError:
            return False
        return True

    def count_dropped_vitals(self, n: int) -> None:
        """Vitals that could not be stored: counted now, persisted with the next write."""
        self.vitals_thinned += n
        self._thinned_dirty = True

    def _thin_vitals_safely(self) -> int:
        try:
            return self._thin_vitals()
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self._rollback()
            return 0

    def _thin_vitals(self) -> int:
        """Delete every second one of the oldest vitals rows; return how many went."""
        batch = max(2, self.max_rows // 10)
        rows = self._db.execute(
            "SELECT seq FROM outbox WHERE kind = 'vitals' AND acked_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (batch,),
        ).fetchall()
        doomed = [r[0] for r in rows[1::2]] or [r[0] for r in rows]
        if not doomed:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in doomed])
            self.vitals_thinned += len(doomed)
            self._set_meta("vitals_thinned", str(self.vitals_thinned))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.vitals_thinned -= len(doomed)
            raise
        self._depth -= len(doomed)
        return len(doomed)
