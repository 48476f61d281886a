"""Taking a certificate back, against a real Mosquitto running the generated configuration:
a revoked room certificate is refused at the TLS handshake (the CRL, `crlfile`), the other
rooms keep working, and SIGHUP makes a running broker read a new CRL (Mosquitto 2.0.11
reloads its listeners' certificates and CRL on SIGHUP)."""

from __future__ import annotations

import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.mosquitto.conf import write_config
from broker.mosquitto.revocation import revoke, write_crl
from contract import topics
from tests.support.clinic import Clinic, open_session, raw_connect

pytestmark = pytest.mark.broker


def _keep_copy(clinic: Clinic, cn: str, where: Path) -> tuple[Path, Path]:
    """The room's certificate and key as the room's Pi still holds them after revocation."""
    cert, key = clinic.creds(cn)
    where.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(cert, where)), Path(shutil.copy(key, where))


def _others_keep_working(clinic: Clinic) -> None:
    cert, key = clinic.creds("room-101")
    assert raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True) == "connack:0"
    room = open_session(clinic.endpoint("room-101"))
    try:
        rc = room.publish(topics.room_topic(clinic.site, "101", "health"), "{}")
        assert not rc.is_failure, rc
    finally:
        room.stop()


def test_a_revoked_room_certificate_is_refused_at_connect(tmp_path: Path) -> None:
    clinic = Clinic(tmp_path / "clinic")
    cert, key = _keep_copy(clinic, "room-102", tmp_path / "old-pi")
    revoke(clinic.pki, "room-102")
    write_config(clinic.settings, clinic.conf)  # as `roomctl broker config` after revoking
    clinic.broker.config_path.write_text(clinic.conf.read_text())
    with clinic:
        outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True)
        assert "CERTIFICATE_REVOKED" in outcome, outcome
        outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key)  # TLS 1.3
        assert outcome.startswith(("tls:", "closed")), outcome
        _others_keep_working(clinic)


def test_sighup_loads_a_new_crl_into_the_running_broker(tmp_path: Path) -> None:
    with Clinic(tmp_path / "clinic") as clinic:
        cert, key = _keep_copy(clinic, "room-102", tmp_path / "old-pi")
        assert raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True) == (
            "connack:0"
        )
        revoke(clinic.pki, "room-102")
        assert clinic.broker.proc is not None
        clinic.broker.proc.send_signal(signal.SIGHUP)
        # The broker handles the signal in its main loop, between two handshakes: try again
        # (each attempt is a full handshake, no sleeping) until it refuses, for 10 s at most.
        deadline = time.monotonic() + 10
        outcome = "connack:0"
        while outcome == "connack:0" and time.monotonic() < deadline:
            outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True)
        assert "CERTIFICATE_REVOKED" in outcome, outcome
        _others_keep_working(clinic)


def test_a_crl_past_its_next_update_locks_every_client_out(tmp_path: Path) -> None:
    """Why `roomctl pki crl` must run before the next-update date (the pki role does, and
    `roomctl pki list` warns): OpenSSL treats an expired CRL as a failed check for everyone."""
    clinic = Clinic(tmp_path / "clinic")
    write_crl(clinic.pki, days=1, now=datetime.now(UTC) - timedelta(days=3))
    with clinic:
        cert, key = clinic.creds("room-101")
        outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True)
        assert "CERTIFICATE_EXPIRED" in outcome, outcome
        write_crl(clinic.pki)
        assert clinic.broker.proc is not None
        clinic.broker.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while outcome != "connack:0" and time.monotonic() < deadline:
            outcome = raw_connect(clinic.tls_port, clinic.pki.ca_cert, cert, key, tls12=True)
        assert outcome == "connack:0"
