"""Central-side subcommands: `pki init|issue`, `broker config`, `logger`, `log export|rooms`."""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands to `roomctl`."""
    _register_pki(sub)
    _register_broker(sub)
    _register_logger(sub)
    _register_log(sub)


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
    from broker.pki import Pki, PkiError

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
    from broker.pki import Pki, PkiError

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
    from broker.mosquitto_conf import BrokerSettings, write_config
    from broker.pki import PkiError

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


# -- logger -----------------------------------------------------------------------------
def _register_logger(sub: argparse._SubParsersAction[Any]) -> None:
    lg = sub.add_parser("logger", help="store every room message in SQLite")
    lg.add_argument("--config", type=Path, help="TOML file (keys as the long options, _ for -)")
    lg.add_argument("--broker", help="mqtts://host:8883 (or mqtt:// for development)")
    lg.add_argument("--ca", type=Path)
    lg.add_argument("--cert", type=Path)
    lg.add_argument("--key", type=Path)
    lg.add_argument("--db", type=Path)
    lg.add_argument("--site")
    lg.add_argument("--client-id")
    lg.add_argument("--share-group", help="subscribe through $share/GROUP/ (several loggers)")
    lg.add_argument("--session-expiry-s", type=int)
    lg.add_argument("--receive-maximum", type=int)
    lg.add_argument("--batch-max", type=int)
    lg.add_argument("--max-bytes", type=int, help="larger payloads go to quarantine")
    lg.add_argument("--synchronous", choices=("FULL", "NORMAL"))
    lg.add_argument("--retention-days", type=float)
    lg.add_argument("--retention-interval-s", type=float)
    lg.add_argument("-v", "--verbose", action="store_true")
    lg.set_defaults(func=_logger)


def _logger(args: argparse.Namespace) -> int:
    from broker.logger import run
    from broker.logger_config import ConfigError, LoggerConfig

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    keys = (
        "broker", "ca", "cert", "key", "db", "site", "client_id", "share_group",
        "session_expiry_s", "receive_maximum", "batch_max", "max_bytes", "synchronous",
        "retention_days", "retention_interval_s",
    )  # fmt: skip
    try:
        cfg = LoggerConfig.load(args.config, {k: getattr(args, k) for k in keys})
        return run(cfg)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc))
    except (OSError, ssl.SSLError, sqlite3.Error) as exc:  # unreadable key, unwritable db, ...
        return _fail(f"logger cannot start: {exc}")


# -- log export / rooms ------------------------------------------------------------------
def _register_log(sub: argparse._SubParsersAction[Any]) -> None:
    from broker.export import FORMATS, KINDS

    lg = sub.add_parser("log", help="read the logger's database")
    lg_sub = lg.add_subparsers(dest="log_command", metavar="ACTION")
    lg_sub.required = True
    exp = lg_sub.add_parser("export", help="vitals, events, calls, sessions or quarantine")
    exp.add_argument("--db", type=Path, required=True)
    exp.add_argument("--site", required=True)
    exp.add_argument("--room")
    exp.add_argument("--kind", choices=KINDS, required=True)
    exp.add_argument("--format", choices=FORMATS, default="csv")
    exp.add_argument("--since", help="inclusive, RFC 3339 or date (UTC if no zone)")
    exp.add_argument("--until", help="exclusive")
    exp.add_argument("--out", type=Path, help="file (default: stdout)")
    exp.set_defaults(func=_log_export)
    rooms = lg_sub.add_parser("rooms", help="every room the logger knows, latest state")
    rooms.add_argument("--db", type=Path, required=True)
    rooms.add_argument("--json", action="store_true")
    rooms.set_defaults(func=_log_rooms)


def _log_export(args: argparse.Namespace) -> int:
    from broker.export import export, parse_time

    if not args.db.exists():
        return _fail(f"no database at {args.db}")
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        if args.out:
            with args.out.open("w", newline="") as fh:
                n = export(args.db, fh, args.kind, args.format, args.site, args.room, since, until)
        else:
            n = export(
                args.db, sys.stdout, args.kind, args.format, args.site, args.room, since, until
            )
    except ValueError as exc:
        return _fail(str(exc))
    print(f"{n} {args.kind} row(s)", file=sys.stderr)
    return 0


def _log_rooms(args: argparse.Namespace) -> int:
    from broker.export import format_rooms, rooms

    if not args.db.exists():
        return _fail(f"no database at {args.db}")
    rows = rooms(args.db)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(format_rooms(rows))
    return 0
