"""Each denial of the ACL table (docs/LOGGER.md), against a real Mosquitto (generated config).

Mosquitto 2.0.11 answers a denied PUBLISH (QoS 1, MQTT 5) with PUBACK 0x87 "Not authorized".
Its ACL file does NOT refuse a SUBSCRIBE (SUBACK grants it); the read check happens at
delivery. So "room A cannot read B's cmd/" is proven with a sentinel: A subscribes to a filter
covering both rooms, staff publishes to B's cmd then to A's cmd, and when A's arrives (same
publisher, same subscriber queue: in order) B's has not.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.mosquitto.conf import acl_text
from broker.mosquitto.pki import Identity, Pki
from tests.support.clinic import Clinic, open_session, raw_connect

pytestmark = pytest.mark.broker

NOT_AUTHORIZED = 0x87


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    with Clinic(tmp_path_factory.mktemp("clinic-acl")) as c:
        yield c


def test_valid_room_certificate_connects(clinic: Clinic) -> None:
    cert, key = clinic.creds("room-101")
    assert raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key) == "connack:0"


def test_anonymous_client_without_certificate_is_refused(clinic: Clinic) -> None:
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, tls12=True)
    assert "HANDSHAKE_FAILURE" in outcome or "CERTIFICATE_REQUIRED" in outcome, outcome
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert)
    assert outcome.startswith(("tls:", "closed")), outcome


def test_valid_certificate_connects_over_tls12_too(clinic: Clinic) -> None:
    cert, key = clinic.creds("staff-alice")
    assert raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True) == "connack:0"


def test_certificate_from_another_ca_is_refused(clinic: Clinic, tmp_path: Path) -> None:
    other = Pki.init(tmp_path / "other-pki", clinic.site)
    issued = other.issue("room", "101")  # same CN, wrong CA
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, issued.cert, issued.key, tls12=True)
    assert "UNKNOWN_CA" in outcome, outcome
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, issued.cert, issued.key)
    assert outcome.startswith(("tls:", "closed")), outcome


def test_expired_certificate_is_refused(clinic: Clinic, tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    issued = clinic.pki.issue(
        "room", "101", not_before=past - timedelta(days=30), not_after=past, out_dir=tmp_path
    )
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, issued.cert, issued.key, tls12=True)
    assert "CERTIFICATE_EXPIRED" in outcome, outcome
    outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, issued.cert, issued.key)
    assert outcome.startswith(("tls:", "closed")), outcome


def test_plain_listener_absent_unless_asked(clinic: Clinic) -> None:
    text = clinic.conf.read_text()
    assert "allow_anonymous true" not in text
    assert "require_certificate true" in text
    assert "use_identity_as_username true" in text


def test_room_cannot_publish_into_another_room(clinic: Clinic) -> None:
    room = open_session(clinic.endpoint("room-101"))
    try:
        assert room.publish("clinic/s1/room/102/vitals", b"{}").value == NOT_AUTHORIZED
        assert room.publish("clinic/s1/room/102/state", b"{}", retain=True).value == NOT_AUTHORIZED
        # its own subtree is allowed, but not its own cmd/ (commands come from staff)
        assert not room.publish("clinic/s1/room/101/vitals", b"{}").is_failure
        assert room.publish("clinic/s1/room/101/cmd/phase", b"{}").value == NOT_AUTHORIZED
        assert room.publish("clinic/s2/room/101/vitals", b"{}").value == NOT_AUTHORIZED
    finally:
        room.stop()


def test_room_cannot_read_another_rooms_cmd(clinic: Clinic) -> None:
    room = open_session(clinic.endpoint("room-101"))
    staff = open_session(clinic.endpoint("staff-alice"))
    try:
        room.subscribe("clinic/s1/room/102/cmd/#")
        room.subscribe("clinic/s1/room/+/cmd/#")
        assert not staff.publish("clinic/s1/room/102/cmd/claim/alice", b"for-102").is_failure
        assert not staff.publish("clinic/s1/room/101/cmd/claim/alice", b"for-101").is_failure
        room.wait_message("clinic/s1/room/101/cmd/claim/alice")
        assert [m.topic for m in room.messages if "/102/" in m.topic] == []
    finally:
        room.stop()
        staff.stop()


def test_staff_cannot_publish_vitals_but_can_command_under_its_own_name(clinic: Clinic) -> None:
    staff = open_session(clinic.endpoint("staff-alice"))
    try:
        assert staff.publish("clinic/s1/room/101/vitals", b"{}").value == NOT_AUTHORIZED
        assert staff.publish("clinic/s1/room/101/call", b"{}").value == NOT_AUTHORIZED
        assert staff.publish("clinic/s1/logger/status", b"online").value == NOT_AUTHORIZED
        assert not staff.publish("clinic/s1/room/101/cmd/phase/alice", b"{}").is_failure
        # not as someone else, not as the board, not without a sender
        for topic in ("cmd/phase/bob", "cmd/phase/board", "cmd/phase"):
            assert staff.publish(f"clinic/s1/room/101/{topic}", b"{}").value == NOT_AUTHORIZED
    finally:
        staff.stop()


def test_logger_and_staff_read_everything_room_reads_only_own_cmd(clinic: Clinic) -> None:
    logger = open_session(clinic.endpoint("logger"))
    staff = open_session(clinic.endpoint("staff-alice"))
    room = open_session(clinic.endpoint("room-102"))
    try:
        logger.subscribe("$share/loggers/clinic/s1/room/+/#")
        staff.subscribe("clinic/s1/#")
        room.subscribe("clinic/s1/#")
        assert not room.publish("clinic/s1/room/102/vitals", b"v").is_failure
        assert not staff.publish("clinic/s1/room/102/cmd/scene/alice", b"c").is_failure
        logger.wait_message("clinic/s1/room/102/vitals")
        logger.wait_message("clinic/s1/room/102/cmd/scene/alice")
        staff.wait_message("clinic/s1/room/102/vitals")
        room.wait_message("clinic/s1/room/102/cmd/scene/alice")
        # the room's own vitals were published before the command: never delivered back to it
        assert [m.topic for m in room.messages] == ["clinic/s1/room/102/cmd/scene/alice"]
        assert logger.publish("clinic/s1/room/102/vitals", b"x").value == NOT_AUTHORIZED
        assert not logger.publish("clinic/s1/logger/status", b"online", retain=True).is_failure
    finally:
        for s in (logger, staff, room):
            s.stop()


def test_identity_without_acl_block_gets_nothing(clinic: Clinic, tmp_path: Path) -> None:
    # Issued after the config was written: a valid certificate, but no `user` block yet.
    issued = clinic.pki.issue("room", "999", out_dir=tmp_path)
    from contract.mqtt import BrokerEndpoint

    ep = BrokerEndpoint.from_url(
        clinic.url, ca=clinic.pki.ca_cert, cert=issued.cert, key=issued.key
    )
    late = open_session(ep)
    try:
        assert late.publish("clinic/s1/room/999/vitals", b"{}").value == NOT_AUTHORIZED
    finally:
        late.stop()


def test_acl_text_blocks() -> None:
    text = acl_text("s1", [Identity("room", "7"), Identity("staff", "x"), Identity("logger", None)])
    head = text.split("user ", 1)[0]
    assert "topic" not in head  # nothing for anonymous clients
    room_block = text.split("user room-7\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "topic read clinic/s1/room/7/cmd/#" in room_block
    assert all("cmd" not in line for line in room_block if line.startswith("topic write"))


def test_dev_listener_only_when_asked(tmp_path: Path) -> None:
    c = Clinic(tmp_path, dev_port=True)
    assert f"listener {c.dev_port} 127.0.0.1" in c.conf.read_text()
    c.start()
    try:
        from tests.support.mqtt import Recorder

        with Recorder(f"mqtt://127.0.0.1:{c.dev_port}", ["clinic/s1/#"]) as rec:
            rec.publish("clinic/s1/room/101/vitals", b"dev")
            rec.wait_for(lambda m: m.payload == b"dev")
    finally:
        c.stop()


def test_acl_notifier_block_reads_the_site_and_writes_only_its_reports() -> None:
    text = acl_text("s1", [Identity("notifier", "main")])
    block = text.split("user notifier-main\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block == [
        "topic read clinic/s1/#",
        "topic write clinic/s1/room/+/receipt/main",  # a page reached a phone (issue 15)
        "topic write clinic/s1/room/+/page/main",  # each page attempt and its result
    ]
    assert Identity.make("notifier", "main").cn == "notifier-main"
    assert Identity.from_cn("notifier-main") == Identity("notifier", "main")
