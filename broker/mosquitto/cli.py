"""`roomctl pki init|issue` and `roomctl broker config`: the clinic PKI and Mosquitto's config."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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
    issue.add_argument("kind", choices=("room", "staff", "logger"))
    issue.add_argument("name", nargs="?", help="room id, staff name (optional for logger)")
    issue.add_argument("--days", type=int, default=825)
    issue.add_argument(
        "--not-after", help="end of validity (RFC 3339), overrides --days (tests, short-lived)"
    )
    issue.add_argument("--not-before", help="start of validity (RFC 3339)")
    issue.set_defaults(func=_pki_issue)


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
        help="0 = none (default; see docs/LOGGER.md: mosquitto 2.0.11 + paho 2.2 wedge a room)",
    )
    conf.set_defaults(func=_broker_config)


def _broker_config(args: argparse.Namespace) -> int:
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
    )
    try:
        conf, acl = write_config(settings, args.out, args.acl_out)
    except (PkiError, ValueError) as exc:
        return _fail(str(exc))
    print(f"wrote {conf} and {acl}")
    return 0
