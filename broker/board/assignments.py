"""The shift's room assignments (issue 15): the charge nurse assigns rooms to nurses on the
board; kept in the board's own database beside the accounts (one row per room), every change
audited by the caller, and published retained for the notifier (`feed.publish_assignments`).
"""

from __future__ import annotations

from .users import ACTING_ROLES, BoardDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assignments (
    room TEXT PRIMARY KEY,
    nurse TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class Assignments:
    def __init__(self, db: BoardDB):
        self.db = db
        with db._lock:
            db.conn.executescript(_SCHEMA)

    def rooms(self) -> dict[str, str]:
        with self.db._lock:
            rows = self.db.conn.execute("SELECT room, nurse FROM assignments ORDER BY room")
            return {str(r): str(n) for r, n in rows.fetchall()}

    def nurses(self) -> list[str]:
        """Who can be assigned: every nurse and charge nurse account."""
        return [name for name, role in self.db.users() if role in ACTING_ROLES]

    def assign(self, room: str, nurse: str | None, by: str) -> None:
        """Assign the room (None: unassign)."""
        with self.db._lock:
            if nurse is None:
                self.db.conn.execute("DELETE FROM assignments WHERE room = ?", (room,))
            else:
                self.db.conn.execute(
                    "INSERT INTO assignments (room, nurse, by, at) VALUES (?, ?, ?, ?) ON"
                    " CONFLICT(room) DO UPDATE SET nurse = excluded.nurse, by = excluded.by,"
                    " at = excluded.at",
                    (room, nurse, by, self.db.now()),
                )
