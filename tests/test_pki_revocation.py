"""Revocation and the certificate report: the CRL signed by the clinic CA, revoke by identity
or serial, superseded certificates, `roomctl pki revoke|crl|list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from broker.mosquitto.conf import BrokerSettings, config_text
from broker.mosquitto.pki import Pki, PkiError, load_cert
from broker.mosquitto.revocation import (
    certificates,
    crl_due,
    parse_serial,
    revoke,
    revoked_serials,
    serial_hex,
    write_crl,
)
from controller.cli import main


def _roomctl(*argv: str) -> int:
    return main(list(argv))


def test_init_writes_an_empty_crl_signed_by_the_ca(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    crl = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert crl.is_signature_valid(load_cert(pki.ca_cert).public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    assert crl.next_update_utc is not None and crl.next_update_utc > datetime.now(UTC)
    conf = config_text(BrokerSettings(site="s1", pki_dir=pki.root), tmp_path / "x.acl")
    assert f"crlfile {pki.crl.resolve()}" in conf


def test_no_crl_no_crlfile_line(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    pki.crl.unlink()  # a PKI made before revocation existed
    conf = config_text(BrokerSettings(site="s1", pki_dir=pki.root), tmp_path / "x.acl")
    assert "\ncrlfile " not in conf
    assert crl_due(pki, 30)


def test_revoke_by_identity_takes_it_out_of_the_inventory(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    old = load_cert(pki.issue("room", "101").cert)
    pki.issue("room", "102")
    rows = revoke(pki, "room-101")
    assert [(r.identity, r.serial, r.current) for r in rows] == [
        ("room-101", old.serial_number, False)
    ]
    assert old.serial_number in revoked_serials(pki)
    assert [i.cn for i in pki.inventory()] == ["room-102"]  # no ACL block any more
    assert not (pki.clients_dir / "room-101.key").exists()
    with pytest.raises(PkiError, match="no current certificate"):
        revoke(pki, "room-101")


def test_reissue_supersedes_and_revoke_by_serial_keeps_the_new_one(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    old = load_cert(pki.issue("room", "101").cert)
    new = load_cert(pki.issue("room", "101").cert)
    now = datetime.now(UTC)
    status = {r.serial: r.status(now) for r in certificates(pki)}
    assert status[old.serial_number] == "superseded"
    assert status[new.serial_number] == "ok"
    revoke(pki, "0x" + serial_hex(old.serial_number).upper())
    assert set(revoked_serials(pki)) == {old.serial_number}
    assert [i.cn for i in pki.inventory()] == ["room-101"]
    with pytest.raises(PkiError, match="no client certificate with serial"):
        revoke(pki, "abc123")
    with pytest.raises(PkiError, match="neither"):
        revoke(pki, "not a serial")


def test_crl_rewrite_keeps_entries_and_counts_up(tmp_path: Path) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    revoke(pki, load_cert(pki.issue("staff", "eve").cert).serial_number.__format__("x"))
    first = x509.load_pem_x509_crl(pki.crl.read_bytes())
    write_crl(pki, days=3)
    second = x509.load_pem_x509_crl(pki.crl.read_bytes())
    assert [e.serial_number for e in second] == [e.serial_number for e in first]
    number = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) == number(first) + 1
    assert second.next_update_utc is not None
    assert second.next_update_utc - datetime.now(UTC) < timedelta(days=3)
    assert crl_due(pki, 30) and not crl_due(pki, 1)


def test_serials_parse_as_hex_in_any_spelling() -> None:
    assert parse_serial("0xAB:cd") == 0xABCD
    assert parse_serial("room-101") is None
    assert parse_serial("") is None


def test_list_flags_expiring_expired_and_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    now = datetime.now(UTC)
    pki.issue("room", "101", days=10)
    pki.issue("room", "102", not_before=now - timedelta(days=3), not_after=now - timedelta(days=1))
    pki.issue("room", "103")
    pki.issue("logger")
    assert _roomctl("pki", "revoke", str(pki.root), "room-103") == 0
    capsys.readouterr()
    assert _roomctl("pki", "list", str(pki.root), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    status = {c["identity"]: c["status"] for c in report["certificates"]}
    assert status == {
        "(ca)": "ok",
        "(server)": "ok",
        "room-101": "expiring",
        "room-102": "expired",
        "room-103": "revoked",
        "logger": "ok",
    }
    assert report["crl_next_update"] is not None
    assert _roomctl("pki", "list", str(pki.root)) == 0
    text = capsys.readouterr().out
    assert "room-101" in text and "<-- renew" in text and "revoked" in text


def test_crl_command_if_due(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = Pki.init(tmp_path / "pki", "s1")
    assert _roomctl("pki", "crl", str(pki.root), "--if-due", "30") == 0
    assert "CHANGED" not in capsys.readouterr().out
    assert _roomctl("pki", "crl", str(pki.root), "--days", "10") == 0
    assert "CHANGED" in capsys.readouterr().out
    assert _roomctl("pki", "crl", str(pki.root), "--if-due", "30") == 0
    assert "CHANGED" in capsys.readouterr().out
    assert _roomctl("pki", "revoke", str(pki.root), "room-999") == 2
