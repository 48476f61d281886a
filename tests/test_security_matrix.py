"""Security matrix: every identity x every topic class, write and read, against a real
Mosquitto running the generated configuration (TLS, client certificates, ACL).

Expected values come from the ACL table of docs/LOGGER.md ("Security" in docs/ARCHITECTURE.md),
re-stated here independently of broker/mosquitto/conf.py:
- a room writes only its own subtree's data topics and reads only its own `cmd/`;
- staff read everything of the site and write only `cmd/`;
- the logger reads everything of the site and writes only its status;
- nobody else gets anything: no certificate, a certificate from another CA, an expired
  certificate are refused at the TLS handshake (a revoked one too: tests/test_broker_revocation.py);
  a valid certificate that has no ACL block (issued after the config was written, or removed
  from `clients/` and the config regenerated) connects but may do nothing.

Writes: QoS 1 PUBLISH answered by PUBACK (success) or 0x87 (Mosquitto 2.0.11). Reads: each
identity subscribes to `#` (Mosquitto grants it and filters at delivery); a publisher on the
config's development listener (no ACL) sends one probe per topic, then a sentinel each
identity may read. Same publisher, same subscriber queue, so when the sentinel arrives every
probe the identity may read has arrived too: no timeouts decide the outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.mosquitto.pki import Pki
from contract.mqtt import BrokerEndpoint
from tests.support.clinic import Clinic, Session, open_session, raw_connect
from tests.support.mqtt import Recorder
from tests.support.reliability_audit import FaultRecord, record

pytestmark = pytest.mark.broker

NOT_AUTHORIZED = 0x87
S = "s1"
DATA = ("availability", "state", "call", "events", "vitals", "health")
TOPICS = [
    *(f"clinic/{S}/room/{r}/{leaf}" for r in ("101", "102") for leaf in DATA),
    *(f"clinic/{S}/room/{r}/cmd/{c}" for r in ("101", "102") for c in ("phase", "claim")),
    *(f"clinic/{S}/room/101/cmd/phase/{who}" for who in ("alice", "bob", "board")),
    *(f"clinic/{S}/room/{r}/sim/button" for r in ("101", "102")),
    f"clinic/{S}/logger/status",
    f"clinic/{S}/board/x",
    "clinic/s2/room/101/vitals",
    "clinic/s2/room/101/cmd/phase",
    "other/top",
]
CONNECTING = ["room-101", "room-102", "staff-alice", "logger", "unlisted"]


def may_write(who: str, topic: str) -> bool:
    if who.startswith("room-"):
        room = who.removeprefix("room-")
        return topic in {f"clinic/{S}/room/{room}/{leaf}" for leaf in DATA}
    if who.startswith("staff-"):
        # commands only under its own name (the room takes the sender from the topic)
        name = who.removeprefix("staff-")
        return re.fullmatch(rf"clinic/{S}/room/[^/]+/cmd/[^/]+/{name}", topic) is not None
    if who == "logger":
        return topic == f"clinic/{S}/logger/status"
    return False


def may_read(who: str, topic: str) -> bool:
    if who.startswith("room-"):
        own = f"clinic/{S}/room/{who.removeprefix('room-')}/"
        # its commands and receipts, and the loggers' status (a logger back online: resend)
        return topic.startswith((own + "cmd/", own + "receipt/", f"clinic/{S}/logger/"))
    if who.startswith("staff-") or who == "logger":
        return topic.startswith(f"clinic/{S}/")
    return False


def sentinel_topic(who: str) -> str | None:
    if who.startswith("room-"):
        return f"clinic/{S}/room/{who.removeprefix('room-')}/cmd/scene/alice"
    if who in ("staff-alice", "logger"):
        return f"clinic/{S}/sentinel/{who}"
    return None


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    with Clinic(tmp_path_factory.mktemp("matrix"), dev_port=True) as c:
        yield c


def endpoint(clinic: Clinic, who: str, tmp: Path) -> BrokerEndpoint:
    if who == "unlisted":  # valid, same CA, but no ACL block (issued after the config)
        issued = clinic.pki.issue("room", "999", out_dir=tmp)
        return BrokerEndpoint.from_url(clinic.url, clinic.pki.ca_cert, issued.cert, issued.key)
    return clinic.endpoint(who)


def test_write_matrix(clinic: Clinic, tmp_path: Path) -> None:
    got: dict[tuple[str, str], bool] = {}
    for who in CONNECTING:
        sess = open_session(endpoint(clinic, who, tmp_path))
        try:
            for topic in TOPICS:
                rc = sess.publish(topic, b"probe")
                assert rc.is_failure is (rc.value == NOT_AUTHORIZED), (who, topic, rc)
                got[(who, topic)] = not rc.is_failure
        finally:
            sess.stop()
    want = {(w, t): may_write(w, t) for w in CONNECTING for t in TOPICS}
    wrong = {k: ("allowed" if v else "denied") for k, v in got.items() if v != want[k]}
    record(FaultRecord(
        f"ACL writes: {len(CONNECTING)} identities x {len(TOPICS)} topics", len(got), None, [],
        f"{sum(got.values())} allowed, {len(wrong)} differ from the ACL table", kind="security",
    ))  # fmt: skip
    assert wrong == {}
    # two rooms' data, staff-alice's commands under her own name only, logger status
    assert sum(want.values()) == 6 + 6 + 1 + 1


def test_read_matrix(clinic: Clinic, tmp_path: Path) -> None:
    sessions: dict[str, Session] = {}
    try:
        for who in CONNECTING:
            sessions[who] = open_session(endpoint(clinic, who, tmp_path))
            sessions[who].subscribe("#")
        assert clinic.dev_port is not None
        with Recorder(f"mqtt://127.0.0.1:{clinic.dev_port}", ["none/#"]) as pub:
            for topic in TOPICS:
                pub.publish(topic, b"probe")
            for who in CONNECTING:
                sentinel = sentinel_topic(who)
                if sentinel:
                    pub.publish(sentinel, b"sentinel")
            # the unlisted identity may read nothing: its sentinel is another's arrival,
            # published after everything above on the same broker
            for who, sess in sessions.items():
                sentinel = sentinel_topic(who)
                if sentinel:
                    sess.wait_message(sentinel)
        got = {
            (who, m.topic)
            for who, sess in sessions.items()
            for m in sess.messages
            if m.payload == b"probe"
        }
        want = {(w, t) for w in CONNECTING for t in TOPICS if may_read(w, t)}
        record(FaultRecord(
            f"ACL reads: {len(CONNECTING)} identities x {len(TOPICS)} topics",
            len(CONNECTING) * len(TOPICS), None, [],
            f"{len(got)} delivered, {len(got ^ want)} differ from the ACL table", kind="security",
        ))  # fmt: skip
        assert got - want == set(), "read where the ACL table denies"
        assert want - got == set(), "denied where the ACL table allows"
        assert not [m for m in sessions["unlisted"].messages], "an unlisted identity read"
    finally:
        for s in sessions.values():
            s.stop()


def test_identities_refused_at_the_handshake(clinic: Clinic, tmp_path: Path) -> None:
    """Anonymous, another CA, expired: TLS 1.2 so the server's alert is deterministic."""
    ca = clinic.pki.ca_cert
    anon = raw_connect(clinic.tls_port, ca, tls12=True)
    assert "HANDSHAKE_FAILURE" in anon or "CERTIFICATE_REQUIRED" in anon, anon
    other = Pki.init(tmp_path / "other", S).issue("staff", "alice")  # a valid-looking staff CN
    assert "UNKNOWN_CA" in raw_connect(clinic.tls_port, ca, other.cert, other.key, tls12=True)
    past = datetime.now(UTC) - timedelta(days=1)
    expired = clinic.pki.issue(
        "logger", None, not_before=past - timedelta(days=10), not_after=past, out_dir=tmp_path
    )
    assert "CERTIFICATE_EXPIRED" in raw_connect(
        clinic.tls_port, ca, expired.cert, expired.key, tls12=True
    )
    not_yet = clinic.pki.issue(
        "staff", "bob", not_before=datetime.now(UTC) + timedelta(days=1),
        not_after=datetime.now(UTC) + timedelta(days=30), out_dir=tmp_path / "future",
    )  # fmt: skip
    outcome = raw_connect(clinic.tls_port, ca, not_yet.cert, not_yet.key, tls12=True)
    assert outcome.startswith("tls:"), outcome
    record(
        FaultRecord(
            "TLS refusals: anonymous, other CA, expired, not yet valid",
            4,
            None,
            [],
            "refused at the handshake (TLS 1.2 alerts)",
            kind="security",
        )
    )
    # the plain listener exists only because this test asked for it (dev_port)
    assert f"listener {clinic.dev_port} 127.0.0.1" in clinic.conf.read_text()
