"""The SQLite outbox: seq across restarts, PUBACK-only deletion, order, and the cap policy."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from controller.outbox import Outbox
from controller.outbox_audit import read_outbox


def put(box: Outbox, kind: str = "vitals") -> int | None:
    return box.enqueue(kind, f"t/{kind}", lambda seq: f'{{"seq": {seq}}}'.encode())


def test_seq_strictly_increasing_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    seqs = [put(box) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    box.ack([1, 2, 3, 4, 5])
    assert box.depth == 0
    box.close()
    box = Outbox(path)  # a restart: the table is empty but seq continues
    assert put(box, "events") == 6
    assert box.pending()[0].payload == b'{"seq": 6}'


def test_wal_mode_and_rows_leave_only_on_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for _ in range(4):
        put(box)
    rows = box.pending(after_seq=0, limit=10)
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert [r.seq for r in box.pending(after_seq=2)] == [3, 4]
    box.ack([2])
    assert [r.seq for r in box.pending()] == [1, 3, 4]
    box.close()
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_state_saved_with_message_atomically(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    box.enqueue("call", "t/call", lambda s: b"{}", state={"call": {"status": "placed"}})
    box.close()
    assert Outbox(path).load_state("call") == {"status": "placed"}


def test_cap_thins_vitals_never_calls_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_rows=100)
    for i in range(100):
        put(box, "events" if i % 10 == 0 else "vitals")
    assert box.depth == 100
    assert put(box, "vitals") is not None  # made room by thinning
    assert box.vitals_thinned == 5  # every second one of the oldest 10 vitals
    kinds = [r.kind for r in box.pending(limit=1000)]
    assert kinds.count("events") == 10  # no event lost
    # A box full of events only: events still go in, a vitals reading is refused and counted.
    full = Outbox(tmp_path / "f.sqlite3", max_rows=100)
    for _ in range(100):
        put(full, "events")
    assert put(full, "call") is not None
    assert put(full, "vitals") is None
    assert full.vitals_thinned == 1
    assert full.depth == 101
    box.close()
    assert Outbox(path).vitals_thinned == 5  # persisted for health


def test_batch_is_one_transaction_with_consecutive_seqs(tmp_path: Path) -> None:
    from controller.outbox import OutboxItem

    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_rows=100)
    put(box)

    def boom(seq: int) -> bytes:
        raise RuntimeError("bad payload")

    items = [OutboxItem("events", "t/e", lambda s: b"e"), OutboxItem("call", "t/c", boom)]
    with contextlib.suppress(RuntimeError):
        box.enqueue_many(items, state={"call": {"status": "placed"}})
    assert box.depth == 1 and box.load_state("call") is None  # nothing half-stored
    good = [OutboxItem("events", "t/e", lambda s: b"e"), OutboxItem("call", "t/c", lambda s: b"c")]
    assert box.enqueue_many(good, state={"call": {"status": "placed"}}) == [2, 3]
    box.close()
    again = Outbox(path)
    assert [r.kind for r in again.pending()] == ["vitals", "events", "call"]
    assert again.load_state("call") == {"status": "placed"}


def test_created_counts_per_kind_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    for kind in ("vitals", "vitals", "events", "call"):
        put(box, kind)
    box.ack([1])
    box.close()
    audit = read_outbox(path)
    assert audit.created == {"vitals": 2, "events": 1, "call": 1}
    assert sorted(audit.pending) == [2, 3, 4]


def test_acked_rows_kept_for_replay_window_then_purged(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite3", clock=lambda: now[0])
    for _ in range(3):
        put(box)
    box.ack([1, 2])
    assert box.depth == 1 and [r.seq for r in box.pending()] == [3]
    now[0] += 50
    box.ack([3])
    # a reconnect: everything acknowledged in the last 60 s goes out again, in order
    now[0] += 20
    assert box.replay_recent(60) == 1  # only seq 3 (acked 20 s ago); 1 and 2 are 70 s old
    assert [r.seq for r in box.pending()] == [3] and box.depth == 1
    box.ack([3])
    assert box.purge_acked(60) == 2  # 1 and 2 are past the window
    assert box.replay_recent(3600) == 1  # seq 3 is still kept
    assert sorted(read_outbox(tmp_path / "o.sqlite3").pending) == [3]


def test_old_outbox_without_acked_column_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
        " created REAL NOT NULL);"
        "INSERT INTO outbox VALUES (1, 'events', 't', x'7b7d', 1, 0, 1.0);"
    )
    db.commit()
    db.close()
    box = Outbox(path)
    assert sorted(read_outbox(path).pending) == [1] and box.depth == 1
