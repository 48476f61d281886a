"""Support for the central-side tests (no tests here): a clinic broker, raw TLS connects, rooms.

`Clinic` makes a PKI, writes the Mosquitto config with `broker.mosquitto.conf` (the same code
as `roomctl broker config`) and starts a real Mosquitto on a free loopback TLS port.
"""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker.mosquitto.conf import BrokerSettings, current_user, write_config
from broker.mosquitto.pki import Identity, Pki
from broker.mosquitto.run import Mosquitto, free_port, wait_port
from contract import messages, topics
from contract.mqtt import BrokerEndpoint, close_client, make_client
from controller.config import RoomConfig, build_config

SITE = "s1"


class Clinic:
    """PKI + generated config + a real Mosquitto (TLS on a free loopback port)."""

    def __init__(
        self,
        root: Path,
        rooms: tuple[str, ...] = ("101", "102"),
        staff: tuple[str, ...] = ("alice",),
        site: str = SITE,
        dev_port: bool = False,
        message_size_limit: int = 0,
    ):
        self.root = root
        self.site = site
        self.pki = Pki.init(root / "pki", site)
        for room in rooms:
            self.pki.issue("room", room)
        for name in staff:
            self.pki.issue("staff", name)
        self.pki.issue("logger")
        self.tls_port = free_port()
        self.dev_port = free_port() if dev_port else None
        state = root / "broker"
        state.mkdir(parents=True, exist_ok=True)
        self.settings = BrokerSettings(
            site=site,
            pki_dir=self.pki.root,
            tls_port=self.tls_port,
            bind="127.0.0.1",
            dev_port=self.dev_port,
            state_dir=state,
            log_file=state / "mosquitto.log",
            run_as=current_user(),
            autosave_interval=1,
            message_size_limit=message_size_limit,
        )
        self.conf, self.acl = write_config(self.settings, root / "mosquitto.conf")
        self.broker = Mosquitto(state, port=self.tls_port, config_text=self.conf.read_text())

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self) -> Clinic:
        self.broker.start()  # waits for the TLS listener
        if self.dev_port is not None:
            wait_port("127.0.0.1", self.dev_port, 10)  # and the plain one, when asked for
        return self

    def stop(self) -> None:
        self.broker.stop()

    def creds(self, cn: str) -> tuple[Path, Path]:
        ident = Identity.from_cn(cn)
        assert ident is not None, cn
        return self.pki.client_paths(ident)

    def room_config(self, room: str, state_dir: Path) -> RoomConfig:
        """A --simulate room that connects over TLS with its own certificate."""
        cert, key = self.creds(f"room-{room}")
        return build_config(
            {
                "site": self.site,
                "room": room,
                "state_dir": str(state_dir),
                "simulate": True,
                "clock": "synced",
                "broker": {
                    "url": self.url,
                    "ca": str(self.pki.ca_cert),
                    "cert": str(cert),
                    "key": str(key),
                    "reconnect_max_s": 1,
                },
            }
        )

    def endpoint(self, cn: str) -> BrokerEndpoint:
        cert, key = self.creds(cn)
        return BrokerEndpoint.from_url(self.url, ca=self.pki.ca_cert, cert=cert, key=key)

    def cli_args(self, cn: str) -> list[str]:
        cert, key = self.creds(cn)
        return [
            "--broker",
            self.url,
            "--ca",
            str(self.pki.ca_cert),
            "--cert",
            str(cert),
            "--key",
            str(key),
        ]

    def broker_log(self) -> str:
        path = self.settings.log_file
        return path.read_text() if path and path.exists() else ""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt5_connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    var = b"\x00\x04MQTT\x05\x02\x00\x3c\x00"  # v5, clean start, keepalive 60, no properties
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    return b"\x10" + _varint(len(body)) + body


def raw_connect(
    port: int,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    timeout: float = 10.0,
    tls12: bool = False,
) -> str:
    """TLS + MQTT 5 CONNECT by hand; returns `connack:<reason>`, `tls:<reason>` or `closed`.

    Deterministic: the server either answers CONNACK, or fails the handshake / closes the socket.
    With TLS 1.3 the client's handshake ends before the server has checked the client
    certificate, so a refusal shows as an alert or as an EOF on the first read; with `tls12`
    the server's alert (unknown CA, expired, ...) always arrives during the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(str(ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock,
            ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(mqtt5_connect_packet(f"raw-{uuid.uuid4().hex[:8]}"))
            head = tls.recv(4)
            if not head:
                return "closed"
            if head[0] >> 4 != 2:
                return f"unexpected:{head!r}"
            return f"connack:{head[3]}"
    except ssl.SSLError as exc:
        return f"tls:{exc.reason}"
    except (ConnectionResetError, BrokenPipeError):
        return "closed"


@dataclass
class Session:
    """A connected paho client with its acks recorded, for the ACL tests."""

    client: mqtt.Client
    cond: threading.Condition = field(default_factory=threading.Condition)
    connack: ReasonCode | None = None
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)

    def _wait(self, pred: Any, timeout: float = 10.0) -> None:
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise TimeoutError("no answer from the broker")

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        self._wait(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def subscribe(self, topic_filter: str, qos: int = 1) -> ReasonCode:
        _, mid = self.client.subscribe(topic_filter, qos=qos)
        assert mid is not None
        self._wait(lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def wait_message(self, topic: str, timeout: float = 10.0) -> mqtt.MQTTMessage:
        self._wait(lambda: any(m.topic == topic for m in self.messages), timeout)
        return next(m for m in self.messages if m.topic == topic)

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)


def open_session(endpoint: BrokerEndpoint, client_id: str | None = None) -> Session:
    client = make_client(endpoint, client_id or f"t-{uuid.uuid4().hex[:8]}")
    sess = Session(client)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: ReasonCode, props: Any = None) -> None:
        with sess.cond:
            sess.connack = rc
            sess.cond.notify_all()

    def on_publish(c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, props: Any = None) -> None:
        with sess.cond:
            sess.pubacks[mid] = rc
            sess.cond.notify_all()

    def on_subscribe(
        c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], props: Any = None
    ) -> None:
        with sess.cond:
            sess.subacks[mid] = rcs
            sess.cond.notify_all()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with sess.cond:
            sess.messages.append(msg)
            sess.cond.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    sess._wait(lambda: sess.connack is not None)
    assert sess.connack is not None and not sess.connack.is_failure, sess.connack
    return sess


# -- contract-valid messages --------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def vitals(site: str, room: str, seq: int, spo2: float = 97.0) -> messages.VitalsMessage:
    return messages.VitalsMessage(
        site=site,
        room=room,
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
        site=site, room=room, seq=seq, ts=kw.pop("ts", now()), clock_synced=True, kind=kind, **kw
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


def poll(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate()` until true or the deadline (for state outside our process: the DB)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        threading.Event().wait(interval)
    raise TimeoutError(f"{what} not reached in {timeout}s")
