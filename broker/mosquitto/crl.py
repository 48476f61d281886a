"""The clinic CA's certificate revocation list (CRL) as a file: read it, (re)write it.

Kept apart from `pki.py` and `revocation.py` (which build on it) so that `Pki.init` can write
the first, empty CRL. The CRL is the one record of what is revoked: rewriting it keeps its
entries and counts its CRL number up.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CRL_DAYS = 180


def read_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList | None:
    """The CRL in `path`, checked against the CA; None when there is none yet."""
    if not path.exists():
        return None
    crl = x509.load_pem_x509_crl(path.read_bytes())
    key = ca_cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(key):
        raise ValueError(f"{path} is not signed by this clinic's CA")
    return crl


def write_crl(
    path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    add: tuple[int, ...] = (),
    days: int = CRL_DAYS,
    now: datetime | None = None,
) -> Path:
    """(Re)write the CRL: what it already revokes plus the serials `add`, valid until now +
    `days`, signed by the CA."""
    if days < 1:
        raise ValueError("a CRL must be valid for at least one day")
    now = now or datetime.now(UTC)
    old = read_crl(path, ca_cert)
    revoked = {e.serial_number: e.revocation_date_utc for e in old} if old is not None else {}
    for serial in add:
        revoked.setdefault(serial, now)
    numbers = [
        ext.value.crl_number
        for ext in (old.extensions if old is not None else [])
        if isinstance(ext.value, x509.CRLNumber)
    ]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(max(numbers, default=0) + 1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
