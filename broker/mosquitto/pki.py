"""The clinic's PKI: one CA, the broker's server certificate, a client certificate per identity.

How this works: `Pki.init(DIR, site)` writes

    DIR/pki.json            {"site": ..., "key_type": "ec-p256"}
    DIR/ca.crt, ca.key      the clinic CA (EC P-256, 10 years by default)
    DIR/server.crt/.key     the broker's certificate; SAN: localhost, 127.0.0.1, ::1 + hostnames
    DIR/clients/            one `<identity>.crt` / `<identity>.key` per issued client
    DIR/web/board.crt/.key  the staff board's HTTPS certificate (`issue_web`), same SAN rule
    DIR/crl.pem             the CA's revocation list, empty at first (see `revocation.py`)
    DIR/archive/            superseded and revoked client certificates (`<cn>.<serial>.crt`)

Client identities are the certificate's CN, and Mosquitto maps the CN to the MQTT username
(`use_identity_as_username true`) and the username to the client id (`use_username_as_clientid
true`), so the ACL is written per identity and a session belongs to one identity:

    room-<room>      a room controller (one per Pi)
    staff-<name>     a member of staff (board, CLI)
    logger           the central logger (or `logger-<name>` for each of several)
    bridge-<site>    a site broker's bridge to the group's central broker (issued by the
                     central PKI; the central ACL confines it to its site, `bridge.py`)

The ACL is generated from the certificates in `clients/` (see `mosquitto_conf.py`): a CA-signed
certificate whose identity is not in `clients/` gets no topic at all. Private keys are written
0600. `not_before`/`not_after` can be forced so tests can make an expired certificate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.mosquitto.crl import write_crl
from contract.messages import is_ident
from contract.topics import check_ident

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 825
KINDS = ("room", "staff", "logger", "bridge", "notifier")


class PkiError(RuntimeError):
    """A readable PKI problem (missing CA, bad name, ...)."""


@dataclass(frozen=True)
class Identity:
    """A client identity: `kind` (room/staff/logger/notifier), its name, and the CN / MQTT
    username."""

    kind: str
    name: str | None

    @property
    def cn(self) -> str:
        if self.kind == "logger":
            return "logger" if not self.name else f"logger-{self.name}"
        return f"{self.kind}-{self.name}"

    @classmethod
    def make(cls, kind: str, name: str | None) -> Identity:
        if kind not in KINDS:
            raise PkiError(f"identity kind {kind!r} must be one of {', '.join(KINDS)}")
        if kind != "logger" and not name:
            raise PkiError(f"a {kind} certificate needs a name")
        if name is not None and not is_ident(name):
            raise PkiError(
                f"{kind} name {name!r} must be lower-case letters, digits, '-' or '_' "
                "(1-63 characters)"
            )
        return cls(kind, name or None)

    @classmethod
    def from_cn(cls, cn: str) -> Identity | None:
        """Reverse of `cn`; None for a CN that is not one of ours."""
        if cn == "logger":
            return cls("logger", None)
        kind, sep, name = cn.partition("-")
        if not sep or kind not in KINDS or not is_ident(name):
            return None
        return cls(kind, name)


@dataclass(frozen=True)
class IssuedCert:
    identity: Identity
    cert: Path
    key: Path
    not_after: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cert_cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


class Pki:
    """A PKI folder. `Pki.init(...)` creates one; `Pki(dir)` opens an existing one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "pki.json"
        if not meta.exists():
            raise PkiError(f"{self.root} is not a PKI folder (run `roomctl pki init` first)")
        self.meta = json.loads(meta.read_text())
        self.site: str = self.meta["site"]

    # -- paths --
    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    def web_paths(self, name: str = "board") -> tuple[Path, Path]:
        """The HTTPS server certificate and key of a web service (the staff board)."""
        return self.root / "web" / f"{name}.crt", self.root / "web" / f"{name}.key"

    @property
    def clients_dir(self) -> Path:
        return self.root / "clients"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    def client_paths(self, identity: Identity) -> tuple[Path, Path]:
        return self.clients_dir / f"{identity.cn}.crt", self.clients_dir / f"{identity.cn}.key"

    # -- creation --
    @classmethod
    def init(
        cls,
        root: str | Path,
        site: str,
        hostnames: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        ca_days: int = CA_DAYS,
        server_days: int = SERVER_DAYS,
        force: bool = False,
    ) -> Pki:
        """Create the CA and the broker's server certificate in `root`."""
        check_ident("site", site)
        root = Path(root)
        if (root / "pki.json").exists() and not force:
            raise PkiError(f"{root} already holds a PKI (use --force to replace it)")
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        now = _now()
        ca_key = _new_key()
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"roomctl {site}"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"roomctl {site} clinic CA"),
            ]
        )
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(root / "ca.key", ca_key)
        _write_cert(root / "ca.crt", ca_cert)
        (root / "pki.json").write_text(json.dumps({"site": site, "key_type": "ec-p256"}) + "\n")
        (root / "clients").mkdir(exist_ok=True)
        pki = cls(root)
        pki.issue_server(hostnames=hostnames, ips=ips, days=server_days)
        if force:
            for old in (pki.crl, *pki.archive_dir.glob("*.crt")):
                old.unlink(missing_ok=True)  # a new CA: the old one's CRL would not verify
        write_crl(pki.crl, *pki.ca())  # empty: the broker config always has a CRL to point at
        return pki

    def ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.ca_key} is not an EC key")
        return load_cert(self.ca_cert), key

    def _sign(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        eku: x509.ObjectIdentifier,
        not_before: datetime,
        not_after: datetime,
        san: list[x509.GeneralName] | None,
    ) -> x509.Certificate:
        ca_cert, ca_key = self.ca()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def issue_server(
        self, hostnames: tuple[str, ...] = (), ips: tuple[str, ...] = (), days: int = SERVER_DAYS
    ) -> Path:
        """(Re)issue the broker certificate: SAN localhost, 127.0.0.1, ::1 plus the given names."""
        return self._issue_server(self.server_cert, self.server_key, hostnames, ips, days)

    def issue_web(
        self,
        hostnames: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        days: int = SERVER_DAYS,
        name: str = "board",
    ) -> Path:
        """(Re)issue the staff board's HTTPS certificate (`web/board.crt`), the broker's SAN
        rule: localhost, 127.0.0.1, ::1 plus the names staff type in the browser."""
        check_ident("web service", name)
        cert_path, key_path = self.web_paths(name)
        cert_path.parent.mkdir(exist_ok=True)
        return self._issue_server(cert_path, key_path, hostnames, ips, days)

    def _issue_server(
        self,
        cert_path: Path,
        key_path: Path,
        hostnames: tuple[str, ...],
        ips: tuple[str, ...],
        days: int,
    ) -> Path:
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        names += [x509.DNSName(h) for h in hostnames if h != "localhost"]
        all_ips = ["127.0.0.1", "::1", *ips]
        seen: set[str] = set()
        for ip in all_ips:
            if ip not in seen:
                seen.add(ip)
                names.append(x509.IPAddress(ip_address(ip)))
        key = _new_key()
        now = _now()
        cn = hostnames[0] if hostnames else "localhost"
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"roomctl {self.site}"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        cert = self._sign(
            subject,
            key,
            ExtendedKeyUsageOID.SERVER_AUTH,
            now - timedelta(minutes=5),
            now + timedelta(days=days),
            names,
        )
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return cert_path

    def issue(
        self,
        kind: str,
        name: str | None = None,
        days: int = CLIENT_DAYS,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        out_dir: Path | None = None,
    ) -> IssuedCert:
        """Issue a client certificate (CN = identity). `not_after` overrides `days` (tests)."""
        identity = Identity.make(kind, name)
        now = _now()
        start = not_before or now - timedelta(minutes=5)
        end = not_after or now + timedelta(days=days)
        if end <= start:
            raise PkiError("the certificate would end before it starts")
        key = _new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"roomctl {self.site}"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.kind),
                x509.NameAttribute(NameOID.COMMON_NAME, identity.cn),
            ]
        )
        cert = self._sign(subject, key, ExtendedKeyUsageOID.CLIENT_AUTH, start, end, None)
        if out_dir is None:
            cert_path, key_path = self.client_paths(identity)
            if cert_path.exists():
                self.archive(cert_path)  # still valid until revoked: see revocation.py
        else:
            cert_path, key_path = out_dir / f"{identity.cn}.crt", out_dir / f"{identity.cn}.key"
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return IssuedCert(identity, cert_path, key_path, end)

    def archive(self, cert_path: Path) -> Path:
        """Move a client certificate out of `clients/` (out of the ACL) into `archive/`, named
        `<cn>.<serial hex>.crt`; its private key, if here, is deleted."""
        cert = load_cert(cert_path)
        self.archive_dir.mkdir(exist_ok=True)
        dest = self.archive_dir / f"{cert_cn(cert)}.{cert.serial_number:x}.crt"
        os.replace(cert_path, dest)
        cert_path.with_suffix(".key").unlink(missing_ok=True)
        return dest

    def inventory(self) -> list[Identity]:
        """Every identity with a certificate in `clients/`, sorted by CN (the ACL's source)."""
        found: dict[str, Identity] = {}
        for path in sorted(self.clients_dir.glob("*.crt")):
            cn = cert_cn(load_cert(path))
            identity = Identity.from_cn(cn)
            if identity is not None and path.stem == cn:
                found[cn] = identity
        return [found[cn] for cn in sorted(found)]
