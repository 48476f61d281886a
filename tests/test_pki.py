"""The PKI helper: CA, server certificate SANs, client CNs, key permissions, expiry."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from broker.mosquitto.pki import Identity, Pki, PkiError, cert_cn, load_cert


def test_init_writes_ca_and_server_cert_with_sans(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1", hostnames=("broker.clinic.lan",), ips=("10.0.0.5",))
    ca = load_cert(pki.ca_cert)
    server = load_cert(pki.server_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "broker.clinic.lan"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ip_address("127.0.0.1"),
        ip_address("::1"),
        ip_address("10.0.0.5"),
    }
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    server.verify_directly_issued_by(ca)


def test_private_keys_are_0600(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    issued = pki.issue("room", "101")
    for key in (pki.ca_key, pki.server_key, issued.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


@pytest.mark.parametrize(
    ("kind", "name", "cn"),
    [
        ("room", "101", "room-101"),
        ("staff", "alice", "staff-alice"),
        ("logger", None, "logger"),
        ("logger", "b", "logger-b"),
    ],
)
def test_client_cn_is_the_identity(tmp_path: Path, kind: str, name: str | None, cn: str) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    issued = pki.issue(kind, name)
    cert = load_cert(issued.cert)
    assert cert_cn(cert) == cn
    assert Identity.from_cn(cn) == Identity(kind, name)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    cert.verify_directly_issued_by(load_cert(pki.ca_cert))


def test_not_after_override_makes_an_expired_cert(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    past = datetime.now(UTC) - timedelta(days=1)
    issued = pki.issue("room", "101", not_before=past - timedelta(days=2), not_after=past)
    assert load_cert(issued.cert).not_valid_after_utc < datetime.now(UTC)
    issued = pki.issue("room", "102", days=3)
    left = load_cert(issued.cert).not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=2) < left <= timedelta(days=3)


def test_inventory_lists_issued_identities(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    pki.issue("room", "102")
    pki.issue("staff", "bob")
    pki.issue("logger")
    assert [i.cn for i in pki.inventory()] == ["logger", "room-102", "staff-bob"]


@pytest.mark.parametrize(
    ("kind", "name"), [("room", "A/B"), ("room", "+"), ("room", None), ("admin", "x")]
)
def test_bad_identities_are_refused(tmp_path: Path, kind: str, name: str | None) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    with pytest.raises(PkiError):
        pki.issue(kind, name)


def test_init_refuses_to_overwrite_and_bad_site(tmp_path: Path) -> None:
    Pki.init(tmp_path / "pki", "s1")
    with pytest.raises(PkiError, match="already"):
        Pki.init(tmp_path / "pki", "s1")
    with pytest.raises(ValueError, match="site"):
        Pki.init(tmp_path / "other", "S 1")
    with pytest.raises(PkiError, match="not a PKI"):
        Pki(tmp_path / "nothing")


def test_issue_web_makes_the_boards_https_certificate(tmp_path: Path) -> None:
    from broker.mosquitto.revocation import certificates

    pki = Pki.init(tmp_path / "pki", "s1", hostnames=("mqtt.test",))
    broker_serial = load_cert(pki.server_cert).serial_number
    cert_path = pki.issue_web(hostnames=("board.test",), ips=("10.0.0.5",))
    cert_path_, key_path = pki.web_paths()
    assert cert_path == cert_path_ == tmp_path / "pki/web/board.crt"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = load_cert(cert_path)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "board.test"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ip_address("127.0.0.1"), ip_address("::1"), ip_address("10.0.0.5")
    }  # fmt: skip
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(load_cert(pki.ca_cert))
    assert load_cert(pki.server_cert).serial_number == broker_serial  # the broker's is untouched
    rows = {row.identity: row for row in certificates(pki)}
    assert rows["(board https)"].serial == cert.serial_number
    with pytest.raises(ValueError, match="web service"):
        pki.issue_web(name="../x")
