"""Numbering epochs: a re-imaged or reset room (new store, seq from 1 again) is never taken
for a replay, never quarantined and never hidden behind its old numbers.

Before epochs, the logger quarantined such a room's calls as "duplicate seq with different
content" and the board ignored its new `call` (a lower seq than the last one it had seen),
so a patient's call did not appear.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.board.live import SiteState
from broker.logger.ingest import classify
from broker.logger.store import open_store
from broker.logger.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, open_db
from contract import topics
from contract.messages import CallMessage, Envelope, StateMessage, new_epoch
from controller.outbox import Outbox
from controller.outbox_audit import read_outbox

SITE, ROOM = "s1", "101"
OLD, NEW = "a" * 16, "b" * 16
TS = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def call(epoch: str, seq: int, call_id: str, status: str = "placed") -> tuple[str, bytes]:
    msg = CallMessage(
        site=SITE, room=ROOM, epoch=epoch, seq=seq, ts=TS, clock_synced=True,
        call_id=call_id, priority="normal", status=status, placed_at=TS,
    )  # fmt: skip
    return topics.call(SITE, ROOM), msg.model_dump_json().encode()


def state(epoch: str, seq: int, phase: str) -> tuple[str, bytes]:
    msg = StateMessage(
        site=SITE, room=ROOM, epoch=epoch, seq=seq, ts=TS, clock_synced=True,
        phase=phase, since=TS, session_id=None if phase == "idle" else "sess-1",
    )  # fmt: skip
    return topics.state(SITE, ROOM), msg.model_dump_json().encode()


def write(store: Any, *msgs: tuple[str, bytes]) -> Any:
    return store.write_batch(
        [(classify(topic, raw, SITE, 65536), "2026-12-01T09:00:00.000Z") for topic, raw in msgs]
    )


def room_row(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM room_state WHERE room = ?", (ROOM,)).fetchone())
    finally:
        conn.close()


def test_every_room_message_names_its_epoch() -> None:
    fields = Envelope.model_json_schema()["required"]
    assert "epoch" in fields
    assert len({new_epoch() for _ in range(100)}) == 100


def test_a_new_epoch_is_stored_at_once_and_its_snapshots_win(tmp_path: Path) -> None:
    db = tmp_path / "log.sqlite3"
    store = open_store(db)
    try:
        stats = write(store, state(OLD, 40, "infusion"), call(OLD, 41, "101-old"))
        assert stats.inserted == 2
        # the card is re-imaged: numbering starts again at 1 in a new epoch
        stats = write(store, state(NEW, 1, "idle"), call(NEW, 2, "101-new"))
        assert (stats.inserted, stats.quarantined, stats.duplicates) == (2, 0, 0)
        assert store.stored_seqs(SITE, ROOM, NEW) == {1, 2}
        assert store.stored_seqs(SITE, ROOM, OLD) == {40, 41}
        row = room_row(db)
        assert json.loads(row["call"])["call_id"] == "101-new" and row["phase"] == "idle"
        assert row["epoch"] == NEW and row["last_seq"] == 2
        # a straggler of the old epoch (higher seq) does not hide the new call
        write(store, call(OLD, 99, "101-old", "claimed"))
        assert json.loads(room_row(db)["call"])["call_id"] == "101-new"
        # a replay of the new epoch is a duplicate; other content under its key is quarantined
        assert write(store, call(NEW, 2, "101-new")).duplicates == 1
        assert write(store, call(NEW, 2, "101-forged")).quarantined == 1
        assert {r["call_id"] for r in store.calls(SITE)} == {"101-old", "101-new"}
        assert store.counts(SITE).duplicate_seqs == 0
    finally:
        store.close()


def test_a_version_1_database_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.execute("INSERT INTO schema_version VALUES (1, '2026-11-30T00:00:00.000Z')")
    conn.execute(
        "INSERT INTO messages VALUES (?, ?, 7, 'call', ?, 1, ?, 'd', '{}')",
        (SITE, ROOM, "2026-11-30T10:00:00.000Z", "2026-11-30T10:00:00.000Z"),
    )
    conn.execute(
        "INSERT INTO room_state (site, room, call_seq, call, last_seq) VALUES (?, ?, 7, ?, 7)",
        (SITE, ROOM, json.dumps({"call_id": "101-legacy"})),
    )
    conn.close()
    migrated = open_db(db)
    try:
        version = migrated.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert version == SCHEMA_VERSION >= 3
        assert migrated.execute("SELECT epoch, seq FROM messages").fetchall() == [("", 7)]
    finally:
        migrated.close()
    store = open_store(db)
    try:
        assert write(store, call(NEW, 1, "101-new")).inserted == 1  # below the legacy seq 7
        assert json.loads(room_row(db)["call"])["call_id"] == "101-new"
        assert store.stored_seqs(SITE, ROOM) == {1, 7}
    finally:
        store.close()


def test_the_board_shows_a_new_epochs_call_at_once() -> None:
    site = SiteState(SITE)
    for topic, raw in (call(OLD, 500, "101-old", "claimed"), call(NEW, 3, "101-new")):
        assert site.apply(ROOM, topics.parse_room_topic(topic).leaf, raw, 0.0) is not None
    current = site.current_call(ROOM)
    assert current is not None and current.call_id == "101-new"
    # an older retained copy of the old epoch arriving late changes nothing
    topic, raw = call(OLD, 501, "101-old", "claimed")
    assert site.apply(ROOM, "call", raw, 1.0) is None
    assert site.current_call(ROOM).call_id == "101-new"  # type: ignore[union-attr]


def test_the_outbox_makes_its_epoch_once_and_a_seeded_store_gets_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "a" / "outbox.sqlite3")
    epoch = box.epoch
    box.close()
    again = Outbox(tmp_path / "a" / "outbox.sqlite3")
    assert again.epoch == epoch and len(epoch) == 16
    again.close()
    assert read_outbox(tmp_path / "a" / "outbox.sqlite3").epoch == epoch
    fresh = Outbox(tmp_path / "b" / "outbox.sqlite3")  # a re-imaged card: a new store
    assert fresh.epoch != epoch
    fresh.close()
    # replace-room.yml seeds a replacement Pi's outbox with a seq floor only
    seeded = tmp_path / "c" / "outbox.sqlite3"
    seeded.parent.mkdir()
    db = sqlite3.connect(seeded)
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', '5000')")
    db.commit()
    db.close()
    box = Outbox(seeded)
    try:
        assert box.epoch not in ("", epoch) and box.last_seq == 5000
    finally:
        box.close()
