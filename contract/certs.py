"""When a certificate expires, read with the standard library only (a room Pi has no
`cryptography`): the PEM's first certificate, walked as DER down to `validity.notAfter`.

How this works: an X.509 certificate is SEQUENCE { tbsCertificate SEQUENCE { [0] version
(optional), serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ...
}, ... }. `_tlv` reads one tag-length-value; we step over the fields before `validity` and
parse its second time (UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`).
Anything else raises `ValueError` naming the file.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at `pos`."""
    if pos + 2 > len(der):
        raise ValueError("truncated")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4 or pos + n > len(der):
            raise ValueError("bad length")
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    if pos + length > len(der):
        raise ValueError("truncated")
    return tag, pos, pos + length


def _time(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime: 1950-2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:
        raise ValueError("not a time")
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def der_not_after(der: bytes) -> datetime:
    tag, start, _ = _tlv(der, 0)  # Certificate
    tag2, pos, tbs_end = _tlv(der, start)  # tbsCertificate
    if tag != 0x30 or tag2 != 0x30:
        raise ValueError("not a certificate")
    if der[pos] == 0xA0:  # [0] version
        pos = _tlv(der, pos)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _tlv(der, pos)[2]
    tag, vstart, _ = _tlv(der, pos)  # validity
    if tag != 0x30 or pos >= tbs_end:
        raise ValueError("no validity")
    after = _tlv(der, vstart)[2]  # past notBefore
    tag, tstart, tend = _tlv(der, after)
    return _time(tag, der[tstart:tend])


def cert_not_after(path: str | Path) -> datetime:
    """The `notAfter` of the first certificate in a PEM file (ValueError if there is none)."""
    data = Path(path).read_bytes()
    match = _PEM.search(data)
    if match is None:
        raise ValueError(f"{path}: no PEM certificate in it")
    try:
        return der_not_after(base64.b64decode(b"".join(match.group(1).split())))
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable certificate ({exc})") from exc
