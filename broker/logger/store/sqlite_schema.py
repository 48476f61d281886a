"""The logger's SQLite schema and its migrations.

`open_db(path)` opens (creating if needed) a database in WAL mode and applies every pending
migration in one transaction each; `schema_version` records what was applied.

Timestamps are RFC 3339 UTC strings with milliseconds and `Z` (`contract.format_ts`): they sort
as text and SQLite's `julianday()` reads them.

Tables (version 1):
- `messages`   the ledger: one row per accepted `(site, room, seq)` with its kind, `ts` and a
               (version 2: `(site, room, epoch, seq)`)
               SHA-256 of its payload bytes (a replay is byte-identical; anything else
               with a known seq is "duplicate seq with different content").
               `payload` holds the JSON for everything but vitals (vitals have their own columns).
- `vitals`     one row per reading, one column per vital (NULL = missing), retention applies;
               `detail` (version 4) the JSON of per-value times, ages, temperature site and
               alarm details when the reading had any.
- `events`     one row per call/session event.
- `calls`      one row per `call_id`: placed/claimed/escalated/cancelled times, `response_s`
               (claimed - placed) and `resolved_s` (cancelled - placed).
- `sessions`   one row per `session_id`: when each phase was entered, ended, durations.
- `room_state` one row per room: latest availability, state, call and health.
- `availability_log` changes of a room's availability (online/offline) as the logger saw them.
- `commands`   staff commands seen on `cmd/` (audit; commands carry no seq).
- `quarantine` everything refused: received_at, topic, reason, raw bytes (capped), size.
- `pages`      (version 5) every attempt of a notifier to page someone about a call, and its
               result, from the room's `page/<notifier>`; unique on the attempt and its time.

Version 2 adds the numbering epoch: `messages`, `vitals` and `events` are keyed on
`(site, room, epoch, seq)`, `epochs` orders each room's epochs as first seen, and
`room_state` records the epoch (and its rank) of its latest snapshots.

Version 3 bounds the quarantine per room: each row names its bucket (`site`, `room` of its
topic; both '' when the topic names no room), and `quarantine_buckets` keeps each bucket's
row count, stored bytes (`length(raw)`) and how many rows were dropped to keep it under the
caps, so trimming never counts the table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contract.messages import VITAL_FIELDS

_VITAL_COLS = ",\n    ".join(f"{f} REAL" for f in VITAL_FIELDS)
_VITAL_NAMES = ", ".join(VITAL_FIELDS)
# The same table in both engines (`{id}`: the engine's surrogate key): one row per page attempt
# reported; a report seen twice (QoS 1, two loggers, a bridge) is one row.
PAGES_TABLE = """
CREATE TABLE pages (
    id {id},
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    notifier TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tier INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (site, room, notifier, call_id, tier, recipient, channel, attempt, at)
);
CREATE INDEX pages_room_at ON pages (site, room, at);
CREATE INDEX pages_received ON pages (received_at)
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    f"""
CREATE TABLE messages (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    digest TEXT NOT NULL,
    payload TEXT,
    PRIMARY KEY (site, room, seq)
) WITHOUT ROWID;

CREATE TABLE vitals (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    {_VITAL_COLS},
    protocol TEXT NOT NULL,
    device_time TEXT,
    alarms TEXT NOT NULL,
    quality TEXT NOT NULL,
    alarm_raw TEXT,
    exc_raw TEXT,
    PRIMARY KEY (site, room, seq)
) WITHOUT ROWID;
CREATE INDEX vitals_room_ts ON vitals (site, room, ts);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    priority TEXT,
    phase TEXT,
    from_phase TEXT,
    session_id TEXT,
    by TEXT,
    reason TEXT,
    detail TEXT NOT NULL,
    UNIQUE (site, room, seq)
);
CREATE INDEX events_room_ts ON events (site, room, ts);
CREATE INDEX events_session ON events (session_id);
CREATE INDEX events_call ON events (call_id);

CREATE TABLE calls (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    call_id TEXT NOT NULL,
    priority TEXT,
    status TEXT NOT NULL,
    placed_at TEXT,
    claimed_at TEXT,
    claimed_by TEXT,
    escalated_at TEXT,
    cancelled_at TEXT,
    cancelled_by TEXT,
    response_s REAL,
    resolved_s REAL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (site, room, call_id)
);
CREATE INDEX calls_placed ON calls (site, placed_at);

CREATE TABLE sessions (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    session_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    started_at TEXT NOT NULL,
    pre_check_at TEXT,
    infusion_at TEXT,
    recovery_at TEXT,
    discharge_ready_at TEXT,
    ended_at TEXT,
    infusion_s REAL,
    recovery_s REAL,
    overruns INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (site, room, session_id)
);
CREATE INDEX sessions_started ON sessions (site, started_at);

CREATE TABLE room_state (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    availability TEXT,
    availability_at TEXT,
    phase TEXT,
    session_id TEXT,
    state_seq INTEGER,
    state TEXT,
    call_status TEXT,
    call_seq INTEGER,
    call TEXT,
    health_seq INTEGER,
    health TEXT,
    last_seq INTEGER,
    last_ts TEXT,
    last_received_at TEXT,
    PRIMARY KEY (site, room)
);

CREATE TABLE availability_log (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    name TEXT NOT NULL,
    by TEXT,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL
);

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    raw BLOB NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received_at);
""",
    # 2: numbering epochs. A room's messages are unique per (site, room, epoch, seq): a
    # re-imaged room (new store, new epoch) starts again at seq 1 and is never taken for a
    # replay. `epochs` keeps the order the logger first saw each epoch of a room; the
    # room_state `*_rank` columns say which epoch the latest snapshot came from, so a newer
    # epoch's snapshot replaces an older one whatever its seq. Rows from before epochs keep
    # the epoch '' (ranked first).
    f"""
CREATE TABLE epochs (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    epoch TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    UNIQUE (site, room, epoch)
);
INSERT INTO epochs (site, room, epoch, first_seen)
    SELECT site, room, '', COALESCE(last_received_at, '') FROM room_state ORDER BY site, room;

CREATE TABLE messages_v2 (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    digest TEXT NOT NULL,
    payload TEXT,
    PRIMARY KEY (site, room, epoch, seq)
) WITHOUT ROWID;
INSERT INTO messages_v2 SELECT site, room, '', seq, kind, ts, clock_synced, received_at,
    digest, payload FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

CREATE TABLE vitals_v2 (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    {_VITAL_COLS},
    protocol TEXT NOT NULL,
    device_time TEXT,
    alarms TEXT NOT NULL,
    quality TEXT NOT NULL,
    alarm_raw TEXT,
    exc_raw TEXT,
    PRIMARY KEY (site, room, epoch, seq)
) WITHOUT ROWID;
INSERT INTO vitals_v2 SELECT site, room, '', seq, ts, clock_synced, received_at,
    {_VITAL_NAMES}, protocol, device_time, alarms, quality, alarm_raw, exc_raw FROM vitals;
DROP TABLE vitals;
ALTER TABLE vitals_v2 RENAME TO vitals;
CREATE INDEX vitals_room_ts ON vitals (site, room, ts);

CREATE TABLE events_v2 (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    epoch TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    priority TEXT,
    phase TEXT,
    from_phase TEXT,
    session_id TEXT,
    by TEXT,
    reason TEXT,
    detail TEXT NOT NULL,
    UNIQUE (site, room, epoch, seq)
);
INSERT INTO events_v2 SELECT id, site, room, '', seq, ts, clock_synced, received_at, kind,
    call_id, priority, phase, from_phase, session_id, by, reason, detail FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_room_ts ON events (site, room, ts);
CREATE INDEX events_session ON events (session_id);
CREATE INDEX events_call ON events (call_id);

ALTER TABLE room_state ADD COLUMN epoch TEXT;
ALTER TABLE room_state ADD COLUMN state_rank INTEGER;
ALTER TABLE room_state ADD COLUMN call_rank INTEGER;
ALTER TABLE room_state ADD COLUMN health_rank INTEGER;
ALTER TABLE room_state ADD COLUMN last_rank INTEGER;
UPDATE room_state SET epoch = '', last_rank = (SELECT id FROM epochs e
    WHERE e.site = room_state.site AND e.room = room_state.room AND e.epoch = ''),
    state_rank = (SELECT id FROM epochs e
    WHERE e.site = room_state.site AND e.room = room_state.room AND e.epoch = ''),
    call_rank = (SELECT id FROM epochs e
    WHERE e.site = room_state.site AND e.room = room_state.room AND e.epoch = ''),
    health_rank = (SELECT id FROM epochs e
    WHERE e.site = room_state.site AND e.room = room_state.room AND e.epoch = '')
""",
    # 3: the quarantine bounded per room (issue 13), and the indexes retention walks
    # (availability_log and commands by received_at). Existing quarantine rows get their
    # bucket from their topic (`clinic/<site>/room/<room>/<leaf>`; anything else is ('', '')).
    """
ALTER TABLE quarantine ADD COLUMN site TEXT NOT NULL DEFAULT '';
ALTER TABLE quarantine ADD COLUMN room TEXT NOT NULL DEFAULT '';
UPDATE quarantine SET room = substr(topic, 8) WHERE topic LIKE 'clinic/%/room/%/%';
UPDATE quarantine SET
    site = CASE WHEN substr(room, instr(room, '/') + 1, 5) = 'room/'
        THEN substr(room, 1, instr(room, '/') - 1) ELSE '' END,
    room = CASE WHEN substr(room, instr(room, '/') + 1, 5) = 'room/'
        THEN substr(room, instr(room, '/') + 6) ELSE '' END
    WHERE room <> '';
UPDATE quarantine SET room = substr(room, 1, instr(room, '/') - 1) WHERE room <> '';
UPDATE quarantine SET site = '' WHERE room = '';
CREATE INDEX quarantine_bucket ON quarantine (site, room, id);
CREATE INDEX availability_log_received ON availability_log (received_at);
CREATE INDEX commands_received ON commands (received_at);
CREATE TABLE quarantine_buckets (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    row_count INTEGER NOT NULL DEFAULT 0,
    byte_count INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, room)
);
INSERT INTO quarantine_buckets (site, room, row_count, byte_count)
    SELECT site, room, COUNT(*), COALESCE(SUM(length(raw)), 0) FROM quarantine
    GROUP BY site, room
""",
    # 4: what a reading says beyond its numbers (issue 18): JSON of the optional vitals
    # fields `observed_at`, `age_s`, `temp_site`, `alarm_details`; NULL when it had none.
    """
ALTER TABLE vitals ADD COLUMN detail TEXT
""",
    # 5: the notifier's page reports (issue 15), shown in the room's timeline
    PAGES_TABLE.format(id="INTEGER PRIMARY KEY"),
)

SCHEMA_VERSION = len(MIGRATIONS)
SYNCHRONOUS_MODES = ("FULL", "NORMAL")


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    got = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(got[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; return the version reached."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT "
        "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this logger's {SCHEMA_VERSION}"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def open_db(
    path: str | Path, synchronous: str = "FULL", readonly: bool = False
) -> sqlite3.Connection:
    """Open the log database (autocommit mode: transactions are explicit), migrated.

    `synchronous=FULL` (default): a batch is on disk when COMMIT returns, and only then is it
    acknowledged to the broker, so even a power cut loses nothing the broker has forgotten.
    `NORMAL` in WAL mode survives a process crash (SIGKILL) but a power cut may lose the last
    committed batches after they were acknowledged: only for bench/test machines.
    """
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}")
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    migrate(conn)
    return conn
