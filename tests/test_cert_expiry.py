"""Certificate expiry warnings (issue 13): the stdlib reader against `cryptography`, the
room's health carrying its certificate's expiry, and the warnings on the board (real app,
real Mosquitto) and in `roomctl status --once`, 30 days ahead."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.board.cert_watch import CertExpiry, file_expiries, warnings
from broker.mosquitto.pki import Pki
from broker.mosquitto.run import Mosquitto
from contract.certs import cert_not_after
from contract.messages import HealthMessage
from controller.core import health
from controller.core.io_types import RoomFacts
from controller.daemon import _cert_expiry
from tests.support.board import SITE, BoardServer, FakeRoom
from tests.support.board_attacks import WebClient
from tests.support.mqtt import Recorder, wait_until
from tests.support.room_core import config

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10, hours=1)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    p = Pki.init(tmp_path / "pki", SITE)
    p.issue("logger", "main", not_after=SOON)  # the logger's certificate runs out soon
    p.issue("room", "101", not_after=datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC))
    return p


def test_the_stdlib_reader_agrees_with_cryptography(pki: Pki, tmp_path: Path) -> None:
    certs = [*sorted(pki.clients_dir.glob("*.crt")), pki.ca_cert, pki.server_cert]
    for path in certs:
        ref = x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc
        assert cert_not_after(path) == ref, path
    assert cert_not_after(pki.clients_dir / "room-101.crt").year == 2051  # GeneralizedTime
    junk = tmp_path / "junk.crt"
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match=r"junk\.crt"):
        cert_not_after(junk)
    assert _cert_expiry(junk) is None and _cert_expiry(None) is None  # the room goes on
    found = {Path(e.what).name: e for e in file_expiries([pki.root, pki.clients_dir, junk])}
    assert "ca.key" not in found and "crl.pem" not in found  # keys and CRLs are skipped
    assert found["junk.crt"].not_after is None
    lines = warnings(found.values(), datetime.now(UTC))
    assert any("logger-main.crt expires in 10 days" in line for line in lines), lines
    assert any("junk.crt" in line for line in lines)
    assert not any("room-101" in line or "ca.crt" in line for line in lines)
    past = [CertExpiry("room 9", datetime(2020, 1, 1, tzinfo=UTC))]
    assert warnings(past, datetime.now(UTC)) == [
        "certificate of room 9 EXPIRED on 2020-01-01: renew it now"
    ]


@pytest.fixture(scope="module")
def ca_der(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    ca = Pki.init(tmp_path_factory.mktemp("pki"), SITE).ca_cert
    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
def test_no_bytes_crash_the_reader(
    tmp_path_factory: pytest.TempPathFactory, ca_der: bytes, der: bytes, cut: int
) -> None:
    """Whatever a file holds (garbage, a truncated certificate), the answer is a datetime or
    a ValueError naming the file: the room daemon and the board go on."""
    path = tmp_path_factory.mktemp("f") / "x.crt"
    for blob in (der, ca_der[:cut], ca_der[:cut] + der):
        pem = base64.encodebytes(blob).decode()
        path.write_text(f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n")
        try:
            assert isinstance(cert_not_after(path), datetime)
        except ValueError as exc:
            assert "x.crt" in str(exc)


def test_the_room_publishes_its_certificate_expiry(pki: Pki) -> None:
    cert = pki.clients_dir / "room-101.crt"
    facts = RoomFacts(cert_not_after=_cert_expiry(cert))
    body = health.health_body(
        config(), facts, link_up=True, monitor_ok=True, uptime_s=1, version="t"
    )
    env = {"v": 1, "site": SITE, "room": "101", "epoch": "0000000000000001", "seq": 1,
           "ts": datetime.now(UTC), "clock_synced": True}  # fmt: skip
    msg = HealthMessage.model_validate({**env, **body})
    assert msg.cert_not_after == datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert '"cert_not_after":"2051-01-02T03:04:05.000Z"' in msg.model_dump_json()
    old_room = {k: v for k, v in body.items() if k != "cert_not_after"}
    assert HealthMessage.model_validate({**env, **old_room}).cert_not_after is None


@pytest.mark.broker
def test_board_and_status_warn_30_days_ahead(
    mosquitto: Mosquitto, board: BoardServer, pki: Pki
) -> None:
    board.board.certs.paths = [pki.root, pki.clients_dir]
    with Recorder(mosquitto.url, [f"clinic/{SITE}/#"]) as rec:
        soon, fine = FakeRoom(rec, "201"), FakeRoom(rec, "202")
        soon.online()
        soon.health(cert_not_after=datetime.now(UTC) + timedelta(days=5, hours=1))
        fine.online()
        fine.health(cert_not_after=datetime.now(UTC) + timedelta(days=200))
        old = FakeRoom(rec, "203")
        old.online()
        old.health()  # an older room that does not say
    wait_until(lambda: len(board.board.state.room_ids()) == 3, 10, "three rooms")
    nurse = WebClient(board.port)
    assert nurse.login("alice", "alice-password-1").status == 303
    page = nurse.request("GET", "/").body.decode()
    assert "certificate of room 201 expires in 5 days" in page
    assert "logger-main.crt expires in 10 days" in page
    assert "room 202" not in page and "room 203" not in page
    site = nurse.request("GET", "/api/rooms")
    assert "certificate of room 201" in site.body.decode()
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", "--broker", mosquitto.url,
         "--site", SITE, "--once", "--watch-cert", str(pki.clients_dir)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "220", "TERM": "dumb"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "certificate of room 201 expires in 5 days" in out.stdout, out.stdout
    assert "logger-main.crt expires in 10 days" in out.stdout
    assert "room 202" not in out.stdout
