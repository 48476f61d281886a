"""`roomctl pki init|issue|revoke|crl|list` and `roomctl broker config`: the clinic PKI and
Mosquitto's config."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.mosquitto.bridge import BridgeSettings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands to `roomctl`."""
    _register_pki(sub)
    _register_broker(sub)


def _fail(message: str) -> int:
    print(f"roomctl: error: {message}", file=sys.stderr)
    return 2


# -- pki --------------------------------------------------------------------------------
def _register_pki(sub: argparse._SubParsersAction[Any]) -> None:
    pki = sub.add_parser("pki", help="clinic CA, broker certificate, client certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", metavar="ACTION")
    pki_sub.required = True

    init = pki_sub.add_parser("init", help="create the clinic CA and the broker's certificate")
    init.add_argument("dir", type=Path)
    init.add_argument("--site", required=True)
    init.add_argument(
        "--hostname", action="append", default=[], help="broker DNS name for the SAN (repeat)"
    )
    init.add_argument("--ip", action="append", default=[], help="broker IP for the SAN (repeat)")
    init.add_argument("--ca-days", type=int, default=3650)
    init.add_argument("--server-days", type=int, default=825)
    init.add_argument("--force", action="store_true", help="replace an existing PKI")
    init.set_defaults(func=_pki_init)

    issue = pki_sub.add_parser("issue", help="issue a client certificate (CN = identity)")
    issue.add_argument("dir", type=Path)
    issue.add_argument("kind", choices=("room", "staff", "logger", "bridge", "notifier"))
    issue.add_argument(
        "name",
        nargs="?",
        help="room id, staff name, site id (bridge), notifier name, optional for logger",
    )
    issue.add_argument("--days", type=int, default=825)
    issue.add_argument(
        "--not-after", help="end of validity (RFC 3339), overrides --days (tests, short-lived)"
    )
    issue.add_argument("--not-before", help="start of validity (RFC 3339)")
    issue.set_defaults(func=_pki_issue)

    web = pki_sub.add_parser(
        "issue-web", help="issue the staff board's HTTPS certificate (web/board.crt)"
    )
    web.add_argument("dir", type=Path)
    web.add_argument(
        "--hostname", action="append", default=[], help="board DNS name for the SAN (repeat)"
    )
    web.add_argument("--ip", action="append", default=[], help="board IP for the SAN (repeat)")
    web.add_argument("--days", type=int, default=825)
    web.set_defaults(func=_pki_issue_web)

    revoke = pki_sub.add_parser(
        "revoke", help="revoke a client certificate (by identity or serial) and rewrite the CRL"
    )
    revoke.add_argument("dir", type=Path)
    revoke.add_argument("target", help="identity (room-101: its current certificate) or serial")
    revoke.add_argument("--crl-days", type=int, default=180, help="validity of the new CRL")
    revoke.set_defaults(func=_pki_revoke)

    crl = pki_sub.add_parser("crl", help="(re)write the CRL with a new next-update date")
    crl.add_argument("dir", type=Path)
    crl.add_argument("--days", type=int, default=180, help="validity of the CRL")
    crl.add_argument(
        "--if-due",
        type=int,
        metavar="DAYS",
        help="only if there is no CRL or it runs out within DAYS (prints CHANGED when written)",
    )
    crl.set_defaults(func=_pki_crl)

    lst = pki_sub.add_parser(
        "list", help="every certificate: identity, serial, not-after, revoked, expiring"
    )
    lst.add_argument("dir", type=Path)
    lst.add_argument("--warn-days", type=int, default=30, help="flag what ends within DAYS")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_pki_list)


def _time_arg(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _pki_init(args: argparse.Namespace) -> int:
    from broker.mosquitto.pki import Pki, PkiError

    try:
        pki = Pki.init(
            args.dir,
            args.site,
            hostnames=tuple(args.hostname),
            ips=tuple(args.ip),
            ca_days=args.ca_days,
            server_days=args.server_days,
            force=args.force,
        )
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"CA: {pki.ca_cert}\nbroker certificate: {pki.server_cert}")
    return 0


def _pki_issue(args: argparse.Namespace) -> int:
    from broker.mosquitto.pki import Pki, PkiError

    try:
        issued = Pki(args.dir).issue(
            args.kind,
            args.name,
            days=args.days,
            not_before=_time_arg(args.not_before),
            not_after=_time_arg(args.not_after),
        )
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"{issued.identity.cn}: {issued.cert} {issued.key} (until {issued.not_after:%Y-%m-%d})")
    print("regenerate the broker config (roomctl broker config) so the ACL includes it")
    return 0


def _pki_issue_web(args: argparse.Namespace) -> int:
    from broker.mosquitto.pki import Pki, PkiError

    try:
        pki = Pki(args.dir)
        cert = pki.issue_web(hostnames=tuple(args.hostname), ips=tuple(args.ip), days=args.days)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"board HTTPS certificate: {cert} {pki.web_paths()[1]}")
    print("give them to `roomctl board --tls-cert CERT --tls-key KEY` (docs/BOARD.md, HTTPS)")
    return 0


def _pki_revoke(args: argparse.Namespace) -> int:
    from broker.mosquitto.pki import Pki, PkiError
    from broker.mosquitto.revocation import revoke, serial_hex

    try:
        pki = Pki(args.dir)
        rows = revoke(pki, args.target, days=args.crl_days)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    for row in rows:
        print(f"revoked {row.identity} serial {serial_hex(row.serial)} ({row.path})")
    print(f"CRL: {pki.crl}; copy it to the broker and reload it (docs/LOGGER.md, PKI)")
    return 0


def _pki_crl(args: argparse.Namespace) -> int:
    from broker.mosquitto.pki import Pki, PkiError
    from broker.mosquitto.revocation import crl_due, write_crl

    try:
        pki = Pki(args.dir)
        if args.if_due is not None and not crl_due(pki, args.if_due):
            print(f"{pki.crl}: valid for more than {args.if_due} days, kept")
            return 0
        path = write_crl(pki, days=args.days)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"CHANGED {path} (valid {args.days} days)")
    return 0


def _pki_list(args: argparse.Namespace) -> int:
    import json

    from broker.mosquitto.pki import Pki, PkiError
    from broker.mosquitto.revocation import certificates, read_crl, serial_hex

    now = datetime.now(UTC)
    try:
        pki = Pki(args.dir)
        rows = certificates(pki)
        crl = read_crl(pki)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    crl_next = crl.next_update_utc if crl is not None else None
    if args.json:
        out = {
            "certificates": [
                {
                    "identity": r.identity,
                    "serial": serial_hex(r.serial),
                    "not_after": r.not_after.isoformat(),
                    "revoked": r.revoked.isoformat() if r.revoked else None,
                    "current": r.current,
                    "status": r.status(now, args.warn_days),
                }
                for r in rows
            ],
            "crl_next_update": crl_next.isoformat() if crl_next else None,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'IDENTITY':<22} {'SERIAL':<42} {'NOT AFTER':<11} STATUS")
    for r in rows:
        status = r.status(now, args.warn_days)
        flag = "  <-- renew" if status in ("expiring", "expired") else ""
        if status == "superseded":
            flag = "  <-- still valid: revoke it"
        print(f"{r.identity:<22} {serial_hex(r.serial):<42} {r.not_after:%Y-%m-%d}  {status}{flag}")
    if crl_next is None:
        print("CRL: none (roomctl pki crl DIR writes one)")
    else:
        late = crl_next - now
        note = "  <-- rewrite it (roomctl pki crl)" if late.days < args.warn_days else ""
        print(f"CRL: next update {crl_next:%Y-%m-%d}{note}")
    return 0


# -- broker config ----------------------------------------------------------------------
def _register_broker(sub: argparse._SubParsersAction[Any]) -> None:
    broker = sub.add_parser("broker", help="central Mosquitto")
    broker_sub = broker.add_subparsers(dest="broker_command", metavar="ACTION")
    broker_sub.required = True
    conf = broker_sub.add_parser("config", help="write mosquitto.conf and its ACL")
    conf.add_argument("--pki", type=Path, required=True)
    conf.add_argument("--site", required=True)
    conf.add_argument("--out", type=Path, required=True)
    conf.add_argument("--acl-out", type=Path, help="ACL path (default: beside --out, .acl)")
    conf.add_argument("--tls-port", type=int, default=8883)
    conf.add_argument("--bind", default="", help="address of the TLS listener (default: all)")
    conf.add_argument(
        "--port", type=int, help="ALSO a plain loopback listener, anonymous: development only"
    )
    conf.add_argument("--state-dir", type=Path, default=Path("/var/lib/mosquitto"))
    conf.add_argument("--log-file", type=Path, help="default: stderr (journald)")
    conf.add_argument("--run-as", default="mosquitto")
    conf.add_argument("--autosave-interval", type=int, default=60)
    conf.add_argument(
        "--message-size-limit",
        type=int,
        default=0,
        help="must stay 0 (docs/LOGGER.md: mosquitto 2.0.11 + paho 2.2 wedge a client); "
        "the size limit is --max-packet-size",
    )
    conf.add_argument(
        "--max-packet-size",
        type=int,
        default=131_072,
        help="bytes, every packet of every client (default 131072; 0 = none)",
    )
    conf.add_argument(
        "--max-connections",
        type=int,
        default=2000,
        help="on the TLS listener (default 2000; keep below the broker's LimitNOFILE)",
    )
    conf.add_argument("--max-keepalive", type=int, default=120, help="seconds (default 120)")
    group = conf.add_argument_group("a group of clinics (docs/SCALE.md)")
    group.add_argument(
        "--central", action="store_true", help="the central broker: ACL for every site's bridge"
    )
    group.add_argument("--bridge-to", metavar="HOST:PORT", help="bridge this site to the centre")
    group.add_argument("--bridge-ca", type=Path, help="the central CA certificate")
    group.add_argument("--bridge-cert", type=Path, help="bridge-<site> certificate (central PKI)")
    group.add_argument("--bridge-key", type=Path)
    group.add_argument(
        "--bridge-rooms", type=int, default=50, help="rooms of the site (sizes a day's queue)"
    )
    conf.set_defaults(func=_broker_config)


def _broker_config(args: argparse.Namespace) -> int:
    from broker.mosquitto.bridge import write_bridged_config, write_central_config
    from broker.mosquitto.conf import BrokerSettings, write_config
    from broker.mosquitto.pki import PkiError

    settings = BrokerSettings(
        site=args.site,
        pki_dir=args.pki,
        tls_port=args.tls_port,
        bind=args.bind,
        dev_port=args.port,
        state_dir=args.state_dir,
        log_file=args.log_file,
        run_as=args.run_as,
        autosave_interval=args.autosave_interval,
        message_size_limit=args.message_size_limit,
        max_packet_size=args.max_packet_size,
        max_connections=args.max_connections,
        max_keepalive=args.max_keepalive,
    )
    try:
        if args.central and args.bridge_to:
            raise ValueError("--central and --bridge-to: a broker is the centre or a site")
        if args.central:
            conf, acl = write_central_config(settings, args.out, args.acl_out)
        elif args.bridge_to:
            conf, acl = write_bridged_config(settings, _bridge(args), args.out, args.acl_out)
        else:
            conf, acl = write_config(settings, args.out, args.acl_out)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"wrote {conf} and {acl}")
    return 0


def _bridge(args: argparse.Namespace) -> BridgeSettings:
    from broker.mosquitto.bridge import BridgeSettings

    host, sep, port = str(args.bridge_to).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--bridge-to {args.bridge_to!r}: give HOST:PORT")
    missing = [
        flag
        for flag, value in (
            ("--bridge-ca", args.bridge_ca),
            ("--bridge-cert", args.bridge_cert),
            ("--bridge-key", args.bridge_key),
        )
        if value is None or not Path(value).is_file()
    ]
    if missing:
        raise ValueError(f"--bridge-to needs readable files for {', '.join(missing)}")
    return BridgeSettings(
        site=args.site,
        central_host=host,
        central_port=int(port),
        ca=args.bridge_ca,
        cert=args.bridge_cert,
        key=args.bridge_key,
        rooms=args.bridge_rooms,
    )
