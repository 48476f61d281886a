"""A message the broker would refuse (too large) is set aside by the room, never retried: the
outbox's refused path and the publisher's pump, with a recording link (no broker here; the real
Mosquitto is in tests/test_broker_limits.py)."""

from __future__ import annotations

from pathlib import Path

from broker.mosquitto.conf import BrokerSettings
from contract import topics
from contract.messages import MAX_MESSAGE_BYTES
from controller.config import BrokerSettings as RoomBrokerSettings
from controller.outbox import REFUSED_HEAD_BYTES, Outbox
from controller.outbox_audit import read_outbox
from controller.publisher import Publisher, publish_packet_size


class RecordingLink:
    """Takes what the pump hands over; `broker_max_packet` as a CONNACK would set it."""

    def __init__(self, broker_max_packet: int | None = None, ready: bool = True) -> None:
        self.broker_max_packet = broker_max_packet
        self.ready = ready
        self.sent: list[tuple[str, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        self.sent.append((topic, len(payload)))
        return len(self.sent)


def put(box: Outbox, size: int, kind: str = "events") -> int | None:
    return box.enqueue(kind, f"clinic/s1/room/101/{kind}", lambda seq: b"x" * size)


def publisher(box: Outbox, limit: int | None = 4096) -> Publisher:
    return Publisher(box, "s1", "101", lambda: True, window=10, max_packet_bytes=limit)


def test_an_oversize_row_is_set_aside_and_the_next_ones_flow(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    put(box, 100)
    put(box, 10_000)  # over the 4096-byte limit below
    put(box, 100)
    pub = publisher(box)
    link = RecordingLink()
    pub.pump(link)
    assert [size for _, size in link.sent] == [100, 100]
    for mid in (1, 2):
        pub.on_puback(mid, True, "Success")
    pub.flush_acks()
    assert box.depth == 0 and box.refused == 1
    pub.pump(link)  # nothing comes back: refused for good, not retried
    assert len(link.sent) == 2
    box.close()
    audit = read_outbox(tmp_path / "o.sqlite3")
    assert audit.refused == 1 and not audit.pending
    reopened = Outbox(tmp_path / "o.sqlite3")  # the count survives a restart
    assert reopened.refused == 1
    sql = "SELECT seq, size, length(head), reason FROM outbox_refused"
    row = reopened._db.execute(sql).fetchone()
    reopened.close()
    assert row[0] == 2 and row[1] == 10_000 and row[2] == REFUSED_HEAD_BYTES
    assert "too large for the broker" in row[3]


def test_the_brokers_announced_limit_wins_over_the_configured_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    put(box, 3000)
    pub = publisher(box, limit=131_072)
    link = RecordingLink(broker_max_packet=2048)  # what the last CONNACK said
    pub.pump(link)
    assert link.sent == [] and box.refused == 1 and box.depth == 0
    box.close()


def test_nothing_is_handed_before_the_broker_said_its_limit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    put(box, 100)
    pub = publisher(box)
    link = RecordingLink(ready=False)  # no CONNACK yet
    assert pub.pump(link) == 0 and link.sent == []
    link.ready = True
    assert pub.pump(link) == 1
    box.close()


def test_refused_rows_kept_are_bounded_but_all_are_counted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    for _ in range(5):
        seq = put(box, 5000)
        assert seq is not None
        box.refuse(seq, "too large", keep=3)
    assert box.refused == 5
    kept = [r[0] for r in box._db.execute("SELECT seq FROM outbox_refused ORDER BY seq")]
    assert kept == [3, 4, 5]
    box.refuse(5, "again")  # already set aside: no double count
    assert box.refused == 5
    box.close()


def test_packet_size_counts_every_byte_of_the_mqtt5_publish() -> None:
    topic = "clinic/s1/room/101/events"
    # fixed header 1 + remaining length (1..4 bytes) + topic 2+n + packet id 2 + properties 1
    assert publish_packet_size(topic, b"y" * 10, 1) == 1 + 1 + 2 + len(topic) + 2 + 1 + 10
    assert publish_packet_size(topic, b"y" * 10, 0) == 1 + 1 + 2 + len(topic) + 1 + 10
    assert publish_packet_size(topic, b"z" * 200_000, 1) == 1 + 3 + 2 + len(topic) + 2 + 1 + 200_000


def test_every_valid_message_fits_the_broker_limit_with_room_to_spare() -> None:
    longest = topics.room_topic("s" * 32, "r" * 32, "health")
    biggest = publish_packet_size(longest, b"x" * MAX_MESSAGE_BYTES, 1)
    assert biggest < BrokerSettings(site="s1", pki_dir=Path(".")).max_packet_size
    assert RoomBrokerSettings().max_packet_bytes == BrokerSettings(
        site="s1", pki_dir=Path(".")
    ).max_packet_size
