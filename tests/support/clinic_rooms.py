"""Support for the central-side tests: contract-valid messages, rooms that publish them into a
`Clinic` over TLS with their own certificates, and read-only checks of the logger's database.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contract import messages, topics
from contract.mqtt import close_client, make_client
from tests.support.clinic import Clinic
from tests.support.polling import poll as poll  # tests import it from here too

# -- contract-valid messages --------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def vitals(site: str, room: str, seq: int, spo2: float = 97.0) -> messages.VitalsMessage:
    return messages.VitalsMessage(
        site=site,
        room=room,
        epoch="0000000000000001",
        seq=seq,
        ts=now(),
        clock_synced=True,
        spo2=spo2,
        pulse_rate=72.0,
        protocol="masimo",
    )


def event(
    site: str, room: str, seq: int, kind: messages.EventKind, **kw: Any
) -> messages.EventMessage:
    return messages.EventMessage(
        site=site,
        room=room,
        epoch="0000000000000001",
        seq=seq,
        ts=kw.pop("ts", now()),
        clock_synced=True,
        kind=kind,
        **kw,
    )


def publish_props() -> Properties:
    return Properties(PacketTypes.PUBLISH)


def room_topic(site: str, room: str, leaf: str) -> str:
    return topics.room_topic(site, room, leaf)


# -- fake rooms and database checks --------------------------------------------------------


class FakeRoom:
    """A room publisher over TLS with its own certificate: contract-valid messages, seq 1, 2, ...

    paho keeps every QoS 1 message until its PUBACK and resends it after a reconnect, which is
    what the room's outbox guarantees; `wait_all_acked` waits for every PUBACK.
    """

    def __init__(self, clinic: Clinic, room: str):
        self.site, self.room = clinic.site, room
        self.seq = 0
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.connected = threading.Event()
        self.client = make_client(
            clinic.endpoint(f"room-{room}"), f"room-{room}-{uuid.uuid4().hex[:4]}"
        )
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.will_set(topics.availability(self.site, room), "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a, **k: self.connected.clear()
        ep = clinic.endpoint(f"room-{room}")
        self.client.connect(ep.host, ep.port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError(f"room {room} could not connect")

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Any = None) -> None:
        if not rc.is_failure:
            c.publish(topics.availability(self.site, self.room), "online", qos=1, retain=True)
            self.connected.set()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(
        self, leaf: str, msg: messages.Envelope | bytes, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        data = msg if isinstance(msg, bytes) else msg.model_dump_json().encode()
        info = self.client.publish(
            topics.room_topic(self.site, self.room, leaf), data, qos=1, retain=retain
        )
        self.infos.append(info)
        return info

    def send_mix(self, count: int) -> None:
        """`count` messages: mostly vitals, an event every 10th, state/call snapshots."""
        for _ in range(count):
            seq = self.next_seq()
            if seq % 10 == 0:
                self.send(
                    "events", event(self.site, self.room, seq, messages.EventKind.SCENE_CHANGED)
                )
            elif seq % 25 == 1:
                self.send(
                    "state",
                    messages.StateMessage(
                        site=self.site,
                        room=self.room,
                        epoch="0000000000000001",
                        seq=seq,
                        ts=now(),
                        clock_synced=True,
                        phase=messages.Phase.INFUSION,
                        session_id=f"sess-{self.room}",
                        since=now(),
                    ),
                    retain=True,
                )
            else:
                self.send("vitals", vitals(self.site, self.room, seq, spo2=90 + seq % 10))

    def pump(self, stop: threading.Event, limit: int, window: int = 50) -> None:
        """Publish until `stop` is set (or `limit` reached), `window` un-acked at most."""
        while not stop.is_set() and self.seq < limit:
            self.send_mix(1)
            if len(self.infos) >= window:
                self.infos[-window].wait_for_publish(30)

    def wait_all_acked(self, timeout: float = 60.0) -> None:
        for info in self.infos:
            info.wait_for_publish(timeout)

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)

    def __enter__(self) -> FakeRoom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def db_seqs(db: Path) -> dict[str, list[int]]:
    """Every stored seq per room (from the messages ledger), read-only."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: dict[str, list[int]] = {}
        for room, seq in conn.execute("SELECT room, seq FROM messages ORDER BY room, seq"):
            out.setdefault(room, []).append(seq)
        return out
    finally:
        conn.close()


def db_count(db: Path, sql: str = "SELECT COUNT(*) FROM messages") -> int:
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
