"""The SQLite outbox: seq across restarts, PUBACK-only deletion, order, and the cap policy."""

from __future__ import annotations

import contextlib
import sqlite3
import tracemalloc
from pathlib import Path

from controller.outbox import BALLAST_BYTES, SEQ_BLOCK, Outbox, OutboxRow
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


def sent_row(box: Outbox, kind: str = "vitals") -> OutboxRow:
    """A telemetry row as the publisher makes it: a reserved seq, sent before it is stored."""
    seq = box.take_seq()
    return OutboxRow(seq, kind, f"t/{kind}", f'{{"seq": {seq}}}'.encode(), 1, False, 0.0)


def test_seqs_sent_before_storing_are_never_reused_after_an_unclean_stop(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    assert put(box, "events") == 1
    assert [sent_row(box).seq for _ in range(3)] == [2, 3, 4]  # sent from memory, not stored
    del box  # SIGKILL: no close
    again = Outbox(path)
    assert again.seqs_skipped == SEQ_BLOCK and again.seq_gaps() == [(2, SEQ_BLOCK + 1)]
    assert put(again, "events") == SEQ_BLOCK + 2  # the seqs that may have been sent stay used
    again.close()
    clean = Outbox(path)  # a clean stop released the reservation: no new gap
    assert clean.seqs_skipped == 0 and sent_row(clean).seq == SEQ_BLOCK + 3
    clean.close()
    assert Outbox(path).seqs_skipped == 0


def test_telemetry_not_acknowledged_in_time_is_stored_with_its_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    rows = [sent_row(box) for _ in range(3)]
    box.count_sent("vitals")
    assert box.store_sent([(r, None) for r in rows[1:]]) == 2  # rows[0] was acknowledged
    assert [r.seq for r in box.pending()] == [2, 3] and box.depth == 2
    assert box.store_sent([(rows[2], None)]) == 0  # stored once
    box.close()
    audit = read_outbox(tmp_path / "o.sqlite3")
    assert audit.last_seq == 3 and audit.pending == {2, 3} and audit.created == {"vitals": 1}


def test_pubacks_are_buffered_and_written_with_the_next_transaction(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    for _ in range(3):
        put(box, "events")
    box.ack([1, 2])
    assert box.depth == 1 and [r.seq for r in box.pending()] == [3]  # acked in memory
    assert read_outbox(path).pending == {1, 2, 3}  # not written yet: no write per PUBACK
    put(box, "events")  # the next transaction carries them
    assert read_outbox(path).pending == {3, 4}
    box.ack([3])
    box.purge_acked(window_s=3600)  # ... or the purge, at the latest
    assert read_outbox(path).pending == {4}
    put(box, "events")
    box.ack([4])
    del box  # a power cut before the PUBACK was written: the row is resent, never lost
    assert [r.seq for r in Outbox(path).pending()] == [4, 5]


def test_a_drained_outbox_writes_its_pubacks_at_once(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    put(box, "events")
    box.ack([1])
    assert read_outbox(path).pending == set()  # another process sees it drained


def test_unchanged_room_state_is_not_written_again(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    state = {"call": {"status": "idle"}}
    assert box.state_changed(state)
    box.enqueue("events", "t/events", lambda s: b"{}", state=state)
    assert not box.state_changed(state)
    assert box.state_changed({"call": {"status": "placed"}})


def test_counts_of_telemetry_sent_from_memory_survive_other_writes(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    put(box, "events")
    sent_row(box)
    box.count_sent("vitals")
    box.ack([1])  # drained: the PUBACK is written at once, the count waits for its own write
    sent_row(box)
    box.count_sent("vitals")
    box.close()
    assert read_outbox(path).created == {"events": 1, "vitals": 2}


def test_the_disk_reserve_is_written_without_holding_it_in_memory(tmp_path: Path) -> None:
    """The 4 MiB reserve file is written in chunks: one buffer of its size was the room's
    peak RSS (issue 17)."""
    tracemalloc.start()
    try:
        box = Outbox(tmp_path / "o.sqlite3")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ballast = tmp_path / "o.sqlite3.ballast"
    assert ballast.stat().st_size == BALLAST_BYTES
    with ballast.open("rb") as f:
        assert not any(f.read())  # zeros
    assert peak < BALLAST_BYTES // 4
    box.close()
