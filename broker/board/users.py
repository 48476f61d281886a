"""The board's own database (SQLite, separate from the logger's): staff accounts, login
sessions and the audit log of staff actions.

Why separate: the logger's database is the clinical record, written by one process (the
logger) with its own migrations; the board only reads it. Accounts and web sessions are the
board's concern and change at another pace. Default path: `board.sqlite` beside the logger's
database (`--board-db` overrides).

Passwords are argon2id hashes (argon2-cffi's `PasswordHasher`, its default parameters).
A session cookie holds a random token; the table stores only its SHA-256, so a copy of the
database does not let anyone log in. Sessions expire (absolute lifetime) and logout deletes
them.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Roles, lowest first: a viewer watches; a nurse claims and sets phases; the charge nurse
# also assigns rooms to nurses for the shift. A kiosk is a wall display's device login: it
# watches like a viewer and its login lasts KIOSK_SESSION_S (never ends mid-shift).
ROLES = ("viewer", "nurse", "charge", "kiosk")
KIOSK_SESSION_S = 7 * 24 * 3600
ACTING_ROLES = ("nurse", "charge")
NAME_MAX = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'nurse', 'charge', 'kiosk')),
    pw_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    room TEXT,
    payload TEXT,
    result TEXT NOT NULL
);
"""


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    csrf: str
    expires_at: float

    @property
    def can_act(self) -> bool:
        return self.role in ACTING_ROLES

    @property
    def can_assign(self) -> bool:
        return self.role == "charge"

    @property
    def is_kiosk(self) -> bool:
        return self.role == "kiosk"


@dataclass(frozen=True)
class AuditRow:
    """One staff action of the audit log (`at` in epoch seconds)."""

    at: float
    name: str
    action: str
    room: str | None
    payload: str | None
    result: str


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_key(token: str) -> str:
    """What a session is known by outside its cookie (the stored SHA-256 of its token)."""
    return _sha(token)


def check_name(name: str) -> str:
    if not name or len(name) > NAME_MAX or not name.isprintable() or name != name.strip():
        raise UserError(f"user name must be 1-{NAME_MAX} printable characters without edges")
    return name


class BoardDB:
    """Accounts, sessions, audit. One connection, serialised with a lock (light traffic)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self._allow_charge_role()
        self.conn.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._hasher = PasswordHasher()
        # a real hash to verify against for unknown names, so timing does not reveal them
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.now = clock

    def close(self) -> None:
        self.conn.close()

    def _allow_charge_role(self) -> None:
        """A board file from before the charge nurse (issue 15): its users table's CHECK
        allows viewer and nurse only. Rebuilt in one transaction, sessions kept (foreign keys
        off meanwhile, as SQLite's table-rebuild procedure says)."""
        row = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'"
        ).fetchone()
        if row is None or "'kiosk'" in row[0]:
            return
        self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "CREATE TABLE users_new (name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK"
                " (role IN ('viewer', 'nurse', 'charge', 'kiosk')), pw_hash TEXT NOT NULL,"
                " created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)"
            )
            self.conn.execute(
                "INSERT INTO users_new (name, role, pw_hash, created_at, disabled)"
                " SELECT name, role, pw_hash, created_at, disabled FROM users"
            )
            self.conn.execute("DROP TABLE users")
            self.conn.execute("ALTER TABLE users_new RENAME TO users")
            if self.conn.execute("PRAGMA foreign_key_check").fetchall():
                raise sqlite3.DatabaseError("board database: sessions without a user")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    # -- accounts -----------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str, replace: bool = False) -> None:
        check_name(name)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UserError("password must have at least 8 characters")
        pw_hash = self._hasher.hash(password)
        with self._lock:
            exists = self.conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
            if exists and not replace:
                raise UserError(f"user {name!r} exists (use --replace to change it)")
            self.conn.execute(
                "INSERT INTO users (name, role, pw_hash, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET role = excluded.role, "
                "pw_hash = excluded.pw_hash, disabled = 0",
                (name, role, pw_hash, self.now()),
            )
            if exists:  # a changed password or role ends the user's open sessions
                self.conn.execute("DELETE FROM sessions WHERE name = ?", (name,))

    def remove_user(self, name: str) -> bool:
        with self._lock:
            self.conn.execute("DELETE FROM sessions WHERE name = ?", (name,))
            cur = self.conn.execute("DELETE FROM users WHERE name = ?", (name,))
            return cur.rowcount > 0

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable (ending its sessions) or enable an account; False if there is none."""
        with self._lock:
            cur = self.conn.execute(
                "UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)
            )
            if disabled:
                self.conn.execute("DELETE FROM sessions WHERE name = ?", (name,))
            return cur.rowcount > 0

    def users(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self.conn.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [(str(n), str(r)) for n, r in rows]

    def verify(self, name: str, password: str) -> str | None:
        """The user's role if the password matches, else None (same work either way)."""
        with self._lock:
            row = self.conn.execute(
                "SELECT pw_hash, role, disabled FROM users WHERE name = ?", (name,)
            ).fetchone()
        pw_hash = row[0] if row else self._dummy
        try:
            self._hasher.verify(pw_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or row[2]:
            return None
        if self._hasher.check_needs_rehash(pw_hash):
            with self._lock:
                self.conn.execute(
                    "UPDATE users SET pw_hash = ? WHERE name = ?",
                    (self._hasher.hash(password), name),
                )
        return str(row[1])

    # -- sessions -----------------------------------------------------------------------
    def new_session(self, name: str, lifetime_s: float) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.now()
        with self._lock:
            self.conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            self.conn.execute(
                "INSERT INTO sessions (token_sha, name, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (_sha(token), name, csrf, now, now + lifetime_s),
            )
            role = self.conn.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
        return token, Session(name, str(role[0]), csrf, now + lifetime_s)

    def extend_session(self, token: str, lifetime_s: float) -> float | None:
        """A live session's new end (now + lifetime); None if it has ended already."""
        now = self.now()
        with self._lock:
            cur = self.conn.execute(
                "UPDATE sessions SET expires_at = ? WHERE token_sha = ? AND expires_at >= ?",
                (now + lifetime_s, _sha(token), now),
            )
        return now + lifetime_s if cur.rowcount == 1 else None

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            row = self.conn.execute(
                "SELECT s.name, u.role, s.csrf, s.expires_at FROM sessions s "
                "JOIN users u ON u.name = s.name WHERE s.token_sha = ? AND u.disabled = 0",
                (_sha(token),),
            ).fetchone()
        if row is None or row[3] < self.now():
            return None
        return Session(str(row[0]), str(row[1]), str(row[2]), float(row[3]))

    def live_session_keys(self) -> set[str]:
        """The keys (`session_key`) of every session that still lets someone in: not ended,
        not expired, its account neither removed nor disabled (by this process or another,
        such as `roomctl board user remove`)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT s.token_sha FROM sessions s JOIN users u ON u.name = s.name "
                "WHERE u.disabled = 0 AND s.expires_at >= ?",
                (self.now(),),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def end_session(self, token: str | None) -> None:
        if token:
            with self._lock:
                self.conn.execute("DELETE FROM sessions WHERE token_sha = ?", (_sha(token),))

    def writable(self) -> str | None:
        """None when the database takes a write lock now (`/healthz`), else why not."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                return str(exc)
        return None

    # -- audit --------------------------------------------------------------------------
    def audit(
        self, name: str, action: str, room: str | None, payload: str | None, result: str
    ) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO audit (at, name, action, room, payload, result) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.now(), name, action, room, payload, result),
            )

    def audit_rows(
        self, limit: int = 100
    ) -> list[tuple[float, str, str, str | None, str | None, str]]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT at, name, action, room, payload, result FROM audit "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [tuple(r) for r in rows]

    def audit_query(
        self,
        since: float,
        until: float,
        name: str | None = None,
        room: str | None = None,
        limit: int = 5000,
    ) -> list[AuditRow]:
        """Audit rows with `since <= at < until` (epoch seconds), of one person and/or one room
        when given, oldest first, at most `limit`."""
        sql = "SELECT at, name, action, room, payload, result FROM audit WHERE at >= ? AND at < ?"
        args: list[object] = [since, until]
        if name:
            sql += " AND name = ?"
            args.append(name)
        if room:
            sql += " AND room = ?"
            args.append(room)
        sql += " ORDER BY at, id LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self.conn.execute(sql, args).fetchall()
        return [AuditRow(*r) for r in rows]
