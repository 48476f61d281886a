"""Support for the central-side tests: a clinic broker, raw TLS connects, paho sessions.

`Clinic` makes a PKI, writes the Mosquitto config with `broker.mosquitto.conf` (the same code
as `roomctl broker config`) and starts a real Mosquitto on a free loopback TLS port. Rooms that
publish into it and the checks of what the logger stored are in `tests.support.clinic_rooms`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from broker.logger.config import LoggerConfig
from broker.logger.service import Logger
from broker.mosquitto.conf import BrokerSettings, current_user, write_config
from broker.mosquitto.pki import Identity, Pki
from broker.mosquitto.run import Mosquitto, free_port, wait_port
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
        loggers: tuple[str, ...] = (),
        notifiers: tuple[str, ...] = (),
        **limits: int,
    ):
        """`loggers`: names of redundant loggers (`logger-<name>` certificates) besides the
        one unnamed `logger`; `limits`: BrokerSettings limits to override (max_connections,
        max_packet_size...)."""
        self.root = root
        self.site = site
        self.pki = Pki.init(root / "pki", site)
        for room in rooms:
            self.pki.issue("room", room)
        for name in staff:
            self.pki.issue("staff", name)
        self.pki.issue("logger")
        for name in loggers:
            self.pki.issue("logger", name)
        for name in notifiers:  # `notifier-<name>` certificates (roomctl notify)
            self.pki.issue("notifier", name)
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
            **limits,  # type: ignore[arg-type]
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

    def __enter__(self) -> Clinic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def logger_config(self, db: Path | str, **over: object) -> LoggerConfig:
        """The logger of this clinic (its own certificate) storing into `db`; `over` for the
        other settings (max_bytes, client_id, share_group, queue_max, retention_*, ...)."""
        cert, key = self.creds("logger")
        data: dict[str, object] = {
            "broker": self.url,
            "ca": self.pki.ca_cert,
            "cert": cert,
            "key": key,
            "db": db,
            "site": self.site,
        }
        data.update(over)
        return LoggerConfig.model_validate(data)

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


@contextmanager
def running_logger(config: LoggerConfig) -> Iterator[Logger]:
    """The logger (in this process) started with `config`, stopped afterwards."""
    logger = Logger(config).start()
    try:
        yield logger
    finally:
        logger.stop()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt5_connect_packet(client_id: str, clean_start: bool = True) -> bytes:
    """CONNECT, MQTT 5, keepalive 60; `clean_start=False` also asks for a session that never
    expires (Session Expiry Interval 0xFFFFFFFF), to resume (take over) a persistent one."""
    cid = client_id.encode()
    if clean_start:
        var = b"\x00\x04MQTT\x05\x02\x00\x3c\x00"  # no properties
    else:
        var = b"\x00\x04MQTT\x05\x00\x00\x3c\x05\x11\xff\xff\xff\xff"
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


@contextmanager
def raw_session(
    port: int, ca: Path, cert: Path, key: Path, client_id: str, clean_start: bool = False
) -> Iterator[int]:
    """A hand-made MQTT 5 connection that stays open (and never reads, acks or reconnects)
    while the `with` body runs; yields the CONNACK reason code. The session thief of the
    identity tests: with `clean_start=False` it resumes `client_id`'s session if it may."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(mqtt5_connect_packet(client_id, clean_start))
        head = tls.recv(4)
        assert len(head) == 4 and head[0] >> 4 == 2, head
        yield head[3]


@dataclass
class Session:
    """A connected paho client with its acks recorded, for the ACL tests."""

    client: mqtt.Client
    cond: threading.Condition = field(default_factory=threading.Condition)
    connack: ReasonCode | None = None
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    disconnects: int = 0

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


def open_session(
    endpoint: BrokerEndpoint, client_id: str | None = None, will: tuple[str, str] | None = None
) -> Session:
    """A connected `Session`; `will` = (topic, payload), retained QoS 1, as a room's."""
    client = make_client(endpoint, client_id or f"t-{uuid.uuid4().hex[:8]}")
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
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

    def on_disconnect(c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, props: Any = None) -> None:
        with sess.cond:
            sess.disconnects += 1
            sess.cond.notify_all()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    sess._wait(lambda: sess.connack is not None)
    assert sess.connack is not None and not sess.connack.is_failure, sess.connack
    return sess
