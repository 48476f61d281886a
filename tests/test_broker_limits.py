"""Broker limits that do not wedge paho, against the real Mosquitto 2.0.11 with the generated TLS
configuration: a 200 MB retained publish is cut at its header and never stored (a broker
restart, as a board restart would, finds the last good message); a room whose outbox holds a
message over the limit sets it aside and keeps delivering; a flood of idle connections does not
stop a room reconnecting; keepalive is bounded."""

from __future__ import annotations

import json
import resource
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.logger.config import LoggerConfig
from broker.mosquitto.conf import BrokerSettings, config_text
from broker.mosquitto.pki import Pki
from broker.mosquitto.run import Mosquitto, dev_config, free_port
from contract import topics
from contract.mqtt import BrokerEndpoint, close_client, make_client
from controller.outbox import Outbox
from tests.support.clinic import (
    SITE,
    Clinic,
    mqtt5_connect_packet,
    open_session,
    raw_session,
    running_logger,
)
from tests.support.clinic_rooms import poll, vitals
from tests.support.room_process import RunningRoom

pytestmark = pytest.mark.broker

FLOOD = 1100  # more than the 1,050 idle clients that once kept rooms out (issue 13)


def test_generated_configs_carry_the_limits(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", SITE)
    settings = BrokerSettings(site=SITE, pki_dir=pki.root)
    text = config_text(settings, tmp_path / "acl")
    for line in (
        "message_size_limit 0",
        "max_packet_size 131072",
        "max_keepalive 120",
        "max_connections 2000",
        "max_queued_bytes 1073741824",
        "max_inflight_messages 100",
    ):
        assert f"\n{line}\n" in text, line
    unlimited = BrokerSettings(site=SITE, pki_dir=pki.root, max_packet_size=0)
    assert "\nmax_packet_size" not in config_text(unlimited, tmp_path / "acl")  # 0: no start
    dev = dev_config(1883, tmp_path)
    assert "\nmax_packet_size 131072\n" in dev and "\nmax_keepalive 120\n" in dev


@pytest.mark.parametrize(
    ("field", "value"),
    [("message_size_limit", 65536), ("max_packet_size", 100), ("max_keepalive", 5)],
)
def test_a_limit_that_would_wedge_clients_is_refused_by_name(
    tmp_path: Path, field: str, value: int
) -> None:
    pki = Pki.init(tmp_path / "pki", SITE)
    settings = BrokerSettings(site=SITE, pki_dir=pki.root, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        config_text(settings, tmp_path / "acl")


def _tls_socket(clinic: Clinic, cn: str) -> ssl.SSLSocket:
    cert, key = clinic.creds(cn)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(clinic.pki.ca_cert))
    ctx.load_cert_chain(str(cert), str(key))
    sock = socket.create_connection(("127.0.0.1", clinic.tls_port), timeout=10)
    return ctx.wrap_socket(sock, server_hostname="127.0.0.1")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_200_mb_retained_publish_is_cut_at_its_header_and_never_stored(
    clinic: Clinic,
) -> None:
    state = topics.room_topic(SITE, "101", "state")
    room = open_session(clinic.endpoint("room-101"))
    try:
        assert not room.publish(state, b'{"good": true}', retain=True).is_failure
    finally:
        room.stop()
    assert clinic.broker.proc is not None
    pid = clinic.broker.proc.pid
    rss_before = _rss_kib(pid)
    size = 200 * 1024 * 1024
    sent = 0
    with _tls_socket(clinic, "room-101") as tls:
        tls.sendall(mqtt5_connect_packet("room-101"))
        assert tls.recv(4)[:1] == b"\x20"  # CONNACK
        name = state.encode()
        body_len = 2 + len(name) + 2 + 1 + size  # topic, packet id, no properties, payload
        header = b"\x33" + _varint(body_len) + len(name).to_bytes(2, "big") + name
        chunk = b"\0" * 65536
        try:
            tls.sendall(header + b"\x00\x01\x00")
            while sent < size:  # bounded: at most 200 MB
                tls.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the broker hung up
    assert sent < 32 * 1024 * 1024, f"the broker read {sent} bytes of a 200 MB packet"
    grown_mib = (_rss_kib(pid) - rss_before) / 1024
    assert grown_mib < 64, f"broker memory grew by {grown_mib:.0f} MiB"
    assert "disconnected due to oversize packet" in clinic.broker_log()
    clinic.broker.restart()  # as a board (re)start would: what does a new subscriber get?
    staff = open_session(clinic.endpoint("staff-alice"))
    try:
        staff.subscribe(state)
        assert staff.wait_message(state).payload == b'{"good": true}'
    finally:
        staff.stop()


@pytest.fixture
def room_101(clinic: Clinic, tmp_path: Path) -> Iterator[tuple[RunningRoom, Path]]:
    """The real room daemon of room 101 whose outbox already holds a 200 kB event (a bug's):
    the row it must set aside. Not started yet."""
    config = clinic.room_config("101", tmp_path / "room")
    box = Outbox(config.state_dir / "outbox.sqlite3")
    bad = box.enqueue("events", topics.room_topic(SITE, "101", "events"), lambda s: b"x" * 200_000)
    box.close()
    assert bad == 1
    room = RunningRoom(config)
    try:
        yield room, config.state_dir
    finally:
        if room.thread.ident is not None:  # started by the test
            room.daemon.stop()
            room.thread.join(15)
            assert not room.thread.is_alive(), "daemon did not stop"


def test_a_room_sets_aside_a_message_the_broker_would_refuse_and_keeps_delivering(
    clinic: Clinic, room_101: tuple[RunningRoom, Path]
) -> None:
    room, _ = room_101
    staff = open_session(clinic.endpoint("staff-alice"))
    try:
        staff.subscribe(f"{topics.site_prefix(SITE)}/room/101/#")
        room.thread.start()
        health = topics.room_topic(SITE, "101", "health")

        def refused_in_health() -> bool:
            with staff.cond:
                bodies = [json.loads(m.payload) for m in staff.messages if m.topic == health]
            return any(b["outbox"]["refused"] == 1 for b in bodies)

        poll(refused_in_health, 20, "health.outbox.refused == 1")
        poll(lambda: room.daemon.outbox.depth == 0, 20, "the outbox drained past the bad row")
        with staff.cond:
            seqs = [
                json.loads(m.payload)["seq"]
                for m in staff.messages
                if m.topic.endswith("/events")
            ]
            online = [m for m in staff.messages if m.payload == b"online" and not m.retain]
        assert seqs and 1 not in seqs and min(seqs) == 2  # the next ones flowed
        assert len(online) == 1  # one connection: never thrown off, never a resend loop
        assert room.daemon.outbox.refused == 1
    finally:
        staff.stop()
    assert "oversize packet" not in clinic.broker_log()  # the room never sent it


def test_a_flood_of_idle_connections_does_not_stop_a_room_reconnecting(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FLOOD + 512
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} open files, the hard limit is {hard}")
    # As the central role's LimitNOFILE does for the real broker (it inherits this limit).
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    flood: list[socket.socket] = []
    try:
        with Clinic(tmp_path / "clinic", rooms=("101",)) as clinic:
            room = RunningRoom(clinic.room_config("101", tmp_path / "room"))
            staff = open_session(clinic.endpoint("staff-alice"))
            availability = topics.room_topic(SITE, "101", "availability")
            try:
                staff.subscribe(availability)
                room.thread.start()

                def live_online() -> int:
                    with staff.cond:
                        return sum(
                            1 for m in staff.messages if m.payload == b"online" and not m.retain
                        )

                poll(lambda: live_online() >= 1, 20, "the room online")
                for _ in range(FLOOD):  # bounded; never sends a byte
                    flood.append(socket.create_connection(("127.0.0.1", clinic.tls_port), 10))
                cert, key = clinic.creds("room-101")
                # Throw the room off (same identity = same client id), then let it come back.
                with raw_session(clinic.tls_port, clinic.pki.ca_cert, cert, key, "x") as rc:
                    assert rc == 0
                    poll(lambda: not room.daemon.link.connected, 20, "the room thrown off")
                poll(lambda: live_online() >= 2, 30, "the room reconnected during the flood")
                assert room.daemon.link.connected
            finally:
                staff.stop()
                room.daemon.stop()
                room.thread.join(15)
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_client_asking_for_no_keepalive_is_given_the_brokers(clinic: Clinic) -> None:
    got: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        got["keepalive"] = getattr(props, "ServerKeepAlive", None)
        got["max_packet"] = getattr(props, "MaximumPacketSize", None)
        done.set()

    client = make_client(clinic.endpoint("staff-alice"), "ka")
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", clinic.tls_port, keepalive=0, properties=props)
    client.loop_start()
    try:
        assert done.wait(10)
    finally:
        client.disconnect()
        close_client(client)
    # A silent (half-open) client is dropped within 1.5 x 120 s instead of never.
    assert got == {"keepalive": 120, "max_packet": 131072}


def test_what_one_room_can_leave_retained_is_bounded(clinic: Clinic) -> None:
    """Retained size rule: a room writes only its own exact topics (no wildcard), each message at
    most max_packet_size, so it can leave at most that many retained messages of that size."""
    block = clinic.acl.read_text().split("user room-101\n", 1)[1].split("\n\n", 1)[0]
    writes = [ln.split()[-1] for ln in block.splitlines() if ln.startswith("topic write ")]
    assert writes and not any("#" in t or "+" in t for t in writes)
    assert all(t.startswith(f"{topics.site_prefix(SITE)}/room/101/") for t in writes)
    bound = len(writes) * clinic.settings.max_packet_size
    assert bound <= 1024 * 1024  # 6 topics x 128 KiB: under 1 MiB per room


def test_a_huge_retained_message_an_old_broker_holds_never_reaches_board_or_logger(
    tmp_path: Path,
) -> None:
    """A broker upgraded from a config without a size limit may still hold a 1 MB retained
    message in its persistence: our clients announce Maximum Packet Size 256 KiB in CONNECT,
    so the broker drops it for them instead of sending it (the board loads nothing)."""
    port = free_port()
    old = dev_config(port, tmp_path / "old").replace("max_packet_size 131072", "")
    (tmp_path / "old").mkdir()
    state = topics.room_topic("s1", "101", "state")
    with Mosquitto(tmp_path / "old", port=port, config_text=old) as broker:
        endpoint = BrokerEndpoint.from_url(broker.url)
        publisher = make_client(endpoint, "old-room")
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        try:
            publisher.publish(state, b"x" * 1_000_000, qos=1, retain=True).wait_for_publish(10)
            board = SiteState("s1")
            feed = BoardFeed(endpoint, board).start()
            with running_logger(
                LoggerConfig(db=tmp_path / "log.db", site="s1", broker=broker.url)
            ) as logger:
                assert feed.wait_subscribed(10) and logger.subscribed.wait(10)
                live = vitals("s1", "101", 1).model_dump_json().encode()
                publisher.publish(topics.vitals("s1", "101"), live, qos=1).wait_for_publish(10)
                poll(lambda: logger.totals.inserted == 1, 20, "the live vitals logged")
                poll(lambda: board.rooms.get("101") is not None, 20, "the board saw room 101")
                assert logger.totals.quarantined == 0  # the 1 MB state never came
                feed.stop()
                assert feed.messages == 2  # the logger's status and the live vitals only
            control = open_session(endpoint)  # no Maximum Packet Size: it is still there
            try:
                control.subscribe(state)
                assert len(control.wait_message(state).payload) == 1_000_000
            finally:
                control.stop()
        finally:
            publisher.loop_stop()
            close_client(publisher)


def test_the_listener_caps_its_connections_and_keeps_the_ones_it_has(tmp_path: Path) -> None:
    """max_connections per listener: past it, new connections are closed at once, and the
    clients already connected (a room) stay; why the firewall caps each source address."""
    with Clinic(tmp_path / "clinic", rooms=("101",), max_connections=20) as clinic:
        room = open_session(clinic.endpoint("room-101"))
        flood: list[socket.socket] = []
        try:
            for _ in range(40):  # bounded
                flood.append(socket.create_connection(("127.0.0.1", clinic.tls_port), 10))
            closed: set[socket.socket] = set()

            def count_closed() -> int:
                ready, _, _ = select.select([s for s in flood if s not in closed], [], [], 0.05)
                for sock in ready:
                    try:
                        if sock.recv(16) == b"":
                            closed.add(sock)
                    except OSError:
                        closed.add(sock)
                return len(closed)

            # The room holds one of the 20 places: 19 idle sockets are admitted, 21 closed.
            poll(lambda: count_closed() >= 21, 20, "the connections past the cap closed")
            assert len(closed) == 21
            assert room.disconnects == 0
            topic = topics.room_topic(SITE, "101", "health")
            assert not room.publish(topic, b"{}").is_failure  # the room's link still works
        finally:
            for sock in flood:
                sock.close()
            room.stop()
