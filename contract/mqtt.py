"""Broker URLs (`mqtt://`, `mqtts://`) and the paho client set-up every part shares.

Rooms, logger, board and CLI take a URL plus, for `mqtts://`, a CA file and a client
certificate and key. One function makes the paho client so TLS, MQTT 5 and the callback API
version are set the same way everywhere.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# What our clients accept (MQTT 5 CONNECT Maximum Packet Size): twice the broker's own limit.
# The broker never sends a client a bigger packet; it drops it for that client instead. So a
# huge retained message left in an old broker's persistence (stored before the broker had a
# limit) never reaches a board, a logger or a room, whatever restarts.
MAX_INBOUND_PACKET = 256 * 1024


@dataclass(frozen=True)
class BrokerEndpoint:
    host: str
    port: int
    tls: bool
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
    ) -> BrokerEndpoint:
        """Parse `mqtt://host:port` or `mqtts://host:port`; ValueError says what is wrong."""
        parsed = urlparse(url)
        if parsed.scheme not in DEFAULT_PORTS:
            raise ValueError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parsed.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        try:
            port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        except ValueError as exc:
            raise ValueError(f"broker URL {url!r} has a bad port") from exc
        tls = parsed.scheme == "mqtts"
        if not tls and (cert or key):
            raise ValueError("a client certificate needs an mqtts:// broker URL")
        if (cert is None) != (key is None):
            raise ValueError("give both the client certificate and its key, or neither")
        return cls(
            host=parsed.hostname,
            port=port,
            tls=tls,
            ca=Path(ca) if ca else None,
            cert=Path(cert) if cert else None,
            key=Path(key) if key else None,
            username=parsed.username,
            password=parsed.password,
        )

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(endpoint: BrokerEndpoint, client_id: str) -> mqtt.Client:
    """A paho 2.x MQTT 5 client with TLS and credentials applied (not yet connected)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if endpoint.tls:
        client.tls_set(
            ca_certs=str(endpoint.ca) if endpoint.ca else None,
            certfile=str(endpoint.cert) if endpoint.cert else None,
            keyfile=str(endpoint.key) if endpoint.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    return client


def connect_properties(
    session_expiry_s: int | None = None, receive_maximum: int | None = None
) -> Properties:
    """CONNECT properties every client sends: our Maximum Packet Size, and the session's."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.MaximumPacketSize = MAX_INBOUND_PACKET
    if session_expiry_s is not None:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def expiry_properties(seconds: float) -> Properties:
    """PUBLISH properties with an MQTT 5 message expiry: the broker drops the message (for
    an offline subscriber too) once it has waited this long."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = max(1, math.ceil(seconds))
    return props


def close_client(client: mqtt.Client) -> None:
    """Stop a client's network thread and release its sockets.

    paho 2.2's `loop_start()` opens a loopback socket pair (to wake its select loop) that
    `loop_stop()` leaves open until the client is garbage-collected; inside a reference cycle
    the sockets can be finalised first and leak. Close it explicitly.
    """
    client.loop_stop()
    reset = getattr(client, "_reset_sockets", None)
    if callable(reset):
        reset()
