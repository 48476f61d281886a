"""Taking certificates back: the clinic CA's revocation list (CRL) and the certificate report.

How this works: the CRL in `DIR/crl.pem` is the one record of what is revoked (serial and
date, signed by the clinic CA); revoking reads it, adds a serial and writes it again with a
higher CRL number. Mosquitto checks every client certificate against it at the TLS handshake
(`crlfile`, set by `roomctl broker config` whenever the file exists; `roomctl pki init` writes
an empty one). A CRL past its next-update date makes OpenSSL refuse EVERY client, so
`write_crl` is run again (`roomctl pki crl DIR`, the pki role) well before then.

Revoking an identity by name (`room-101`) revokes its current certificate and moves it from
`clients/` to `archive/`, so the regenerated ACL drops the identity too. Re-issuing a
certificate also moves the old one to `archive/` (see `Pki.issue`); `replace-room.yml` then
revokes the old one by serial, so the new Pi's certificate is the room's only valid one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from broker.mosquitto import crl as crl_file
from broker.mosquitto.crl import CRL_DAYS
from broker.mosquitto.pki import Identity, Pki, PkiError, cert_cn, load_cert

WARN_DAYS = 30


def serial_hex(serial: int) -> str:
    """How serials are shown and typed: lower-case hex, no separators (as `openssl x509`)."""
    return f"{serial:x}"


def parse_serial(text: str) -> int | None:
    """A serial as typed (hex, optional `0x`, `:` separators allowed); None if it is not one."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16) if cleaned else None
    except ValueError:
        return None


def read_crl(pki: Pki) -> x509.CertificateRevocationList | None:
    """The PKI's CRL, checked against its CA; None when there is none yet."""
    try:
        return crl_file.read_crl(pki.crl, pki.ca()[0])
    except ValueError as exc:
        raise PkiError(str(exc)) from exc


def revoked_serials(pki: Pki) -> dict[int, datetime]:
    """Serial -> revocation date, from the CRL."""
    crl = read_crl(pki)
    if crl is None:
        return {}
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}


def write_crl(
    pki: Pki,
    add: tuple[int, ...] = (),
    days: int = CRL_DAYS,
    now: datetime | None = None,
) -> Path:
    """(Re)write `crl.pem`: what it already revokes plus `add`, valid until now + `days`."""
    ca_cert, ca_key = pki.ca()
    try:
        return crl_file.write_crl(pki.crl, ca_cert, ca_key, add, days, now)
    except ValueError as exc:
        raise PkiError(str(exc)) from exc


def crl_due(pki: Pki, within_days: int, now: datetime | None = None) -> bool:
    """True when there is no CRL or its next update is less than `within_days` away."""
    crl = read_crl(pki)
    if crl is None or crl.next_update_utc is None:
        return True
    now = now or datetime.now(UTC)
    return crl.next_update_utc - now < timedelta(days=within_days)


@dataclass(frozen=True)
class CertRow:
    """One certificate of the PKI, as `roomctl pki list` shows it."""

    identity: str  # the CN of a client; "(ca)" and "(server)" for the others
    serial: int
    not_after: datetime
    path: Path
    current: bool  # False: superseded or revoked, kept in archive/
    revoked: datetime | None

    def status(self, now: datetime, warn_days: int = WARN_DAYS) -> str:
        if self.revoked is not None:
            return "revoked"
        if not self.current:
            return "superseded"  # not revoked: still valid! revoke it (replace-room does)
        if self.not_after <= now:
            return "expired"
        if self.not_after - now < timedelta(days=warn_days):
            return "expiring"
        return "ok"


def certificates(pki: Pki) -> list[CertRow]:
    """Every certificate the PKI issued that it still holds: CA, broker, board, clients,
    archive."""
    revoked = revoked_serials(pki)
    rows: list[CertRow] = []
    servers = [("(ca)", pki.ca_cert), ("(server)", pki.server_cert)]
    if pki.web_paths()[0].exists():
        servers.append(("(board https)", pki.web_paths()[0]))
    for name, path in servers:
        cert = load_cert(path)
        rows.append(CertRow(name, cert.serial_number, cert.not_valid_after_utc, path, True, None))
    for folder, current in ((pki.clients_dir, True), (pki.archive_dir, False)):
        for path in sorted(folder.glob("*.crt")):
            cert = load_cert(path)
            serial = cert.serial_number
            rows.append(
                CertRow(
                    cert_cn(cert),
                    serial,
                    cert.not_valid_after_utc,
                    path,
                    current,
                    revoked.get(serial),
                )
            )
    return rows


def revoke(pki: Pki, target: str, days: int = CRL_DAYS) -> list[CertRow]:
    """Revoke the current certificate of identity `target` (a CN: `room-101`), or the
    certificate with serial `target` (current or archived); rewrite the CRL. A current
    certificate moves to `archive/`, so the next `roomctl broker config` drops its ACL."""
    rows = [r for r in certificates(pki) if r.identity not in ("(ca)", "(server)")]
    if Identity.from_cn(target) is not None:
        chosen = [r for r in rows if r.identity == target and r.current]
        if not chosen:
            raise PkiError(f"{target} has no current certificate in {pki.clients_dir}")
    else:
        serial = parse_serial(target)
        if serial is None:
            raise PkiError(f"{target!r} is neither an identity (room-101) nor a serial (hex)")
        chosen = [r for r in rows if r.serial == serial]
        if not chosen:
            raise PkiError(f"no client certificate with serial {serial_hex(serial)} in {pki.root}")
    write_crl(pki, add=tuple(r.serial for r in chosen), days=days)
    for row in chosen:
        if row.current:
            pki.archive(row.path)
    done = {r.serial for r in chosen}
    return [r for r in certificates(pki) if r.serial in done]
