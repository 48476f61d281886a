"""The quarantine is bounded per room (issue 13): a flood of bad messages from one room keeps
at most its caps (oldest dropped first, counted) and leaves the other rooms' rows alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.logger.ingest import Rejected
from broker.logger.store import QuarantineLimits, open_store
from broker.logger.store.sqlite import SqliteLogStore
from broker.logger.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, open_db
from contract import topics
from tests.support.logger_store import RX, SITE, q


def _bad(topic: str, n: int, size: int = 20) -> Rejected:
    raw = f"{{bad {n:08d}".encode().ljust(size, b" ")
    return Rejected(topic, "invalid JSON: test", raw, len(raw))


def test_a_flood_from_one_room_keeps_its_cap_and_spares_the_others(
    store: SqliteLogStore,
) -> None:
    quiet = topics.vitals(SITE, "102")
    store.write_batch([(_bad(quiet, i), RX) for i in range(5)])
    store.write_batch([(_bad("not/a/room/topic", 0), RX)])
    flood = topics.events(SITE, "101")
    dropped = 0
    for start in range(0, 100_000, 1000):
        stats = store.write_batch([(_bad(flood, n), RX) for n in range(start, start + 1000)])
        assert stats.quarantined == 1000
        dropped += stats.quarantine_dropped
    kept = q(store, "SELECT MIN(raw), MAX(raw), COUNT(*) FROM quarantine WHERE topic = ?", flood)
    assert kept[0][2] == 10_000  # the default cap
    assert bytes(kept[0][0]).startswith(b"{bad 00090000")  # the oldest went first
    assert bytes(kept[0][1]).startswith(b"{bad 00099999")
    assert dropped == 90_000
    assert q(store, "SELECT COUNT(*) FROM quarantine WHERE topic = ?", quiet) == [(5,)]
    usage = {(r["site"], r["room"]): r for r in store.quarantine_usage()}
    assert usage[(SITE, "101")] == {
        "site": SITE, "room": "101", "rows": 10_000, "bytes": 200_000, "dropped": 90_000,
    }  # fmt: skip
    assert usage[(SITE, "102")]["rows"] == 5 and usage[(SITE, "102")]["dropped"] == 0
    assert usage[("", "")]["rows"] == 1
    counts = store.counts(SITE)
    assert counts.quarantined == 10_006 and counts.quarantine_dropped == 90_000


def test_the_byte_cap_drops_the_oldest_rows_too(tmp_path: Path) -> None:
    store = open_store(tmp_path / "log.db", quarantine=QuarantineLimits(1000, 10_000))
    topic = topics.vitals(SITE, "101")
    try:
        stats = store.write_batch([(_bad(topic, n, size=1000), RX) for n in range(25)])
        assert stats.quarantine_dropped == 15
        (usage,) = store.quarantine_usage()
        assert (usage["rows"], usage["bytes"], usage["dropped"]) == (10, 10_000, 15)
        stats = store.write_batch([(_bad(topic, 25, size=1000), RX)])
        assert stats.quarantine_dropped == 1
        (usage,) = store.quarantine_usage()
        assert (usage["rows"], usage["bytes"], usage["dropped"]) == (10, 10_000, 16)
    finally:
        store.close()


def test_a_version_2_quarantine_migrates_into_buckets(tmp_path: Path) -> None:
    db = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.executemany("INSERT INTO schema_version VALUES (?, 'then')", [(1,), (2,)])
    for topic in (topics.vitals(SITE, "101"), topics.cmd(SITE, "101", "claim", "board"), "junk/x"):
        conn.execute(
            "INSERT INTO quarantine (received_at, topic, reason, size, raw) "
            "VALUES (?, ?, 'r', 3, ?)",
            (RX, topic, b"abc"),
        )
    conn.close()
    migrated = open_db(db)
    try:
        assert SCHEMA_VERSION >= 3
        buckets = migrated.execute(
            "SELECT site, room, row_count, byte_count, dropped FROM quarantine_buckets "
            "ORDER BY site, room"
        ).fetchall()
        assert buckets == [("", "", 1, 3, 0), (SITE, "101", 2, 6, 0)]
    finally:
        migrated.close()
