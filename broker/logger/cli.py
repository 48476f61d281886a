"""`roomctl logger` (run the logger) and `roomctl log export|rooms` (read what it stored)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Any


def db_arg(text: str) -> Path | str:
    """`--db`: a SQLite file or a PostgreSQL URL; any other URL is refused, never made a path."""
    from broker.logger.store import store_location

    try:
        return store_location(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands to `roomctl`."""
    _register_logger(sub)
    _register_log(sub)


def _fail(message: str) -> int:
    print(f"roomctl: error: {message}", file=sys.stderr)
    return 2


# -- logger -----------------------------------------------------------------------------
def _register_logger(sub: argparse._SubParsersAction[Any]) -> None:
    lg = sub.add_parser("logger", help="store every room message (SQLite or PostgreSQL)")
    lg.add_argument("--config", type=Path, help="TOML file (keys as the long options, _ for -)")
    lg.add_argument("--broker", help="mqtts://host:8883 (or mqtt:// for development)")
    lg.add_argument("--ca", type=Path)
    lg.add_argument("--cert", type=Path)
    lg.add_argument("--key", type=Path)
    lg.add_argument("--db", type=db_arg, help="SQLite file (or sqlite:///path) or postgresql://user@host/db")
    lg.add_argument("--site")
    lg.add_argument(
        "--also-site", dest="also_sites", action="append", help="a central logger: more sites"
    )
    lg.add_argument("--client-id")
    lg.add_argument("--name", help="one of several loggers (default: from its certificate)")
    lg.add_argument("--share-group", help="subscribe through $share/GROUP/ (several loggers)")
    lg.add_argument("--session-expiry-s", type=int)
    lg.add_argument("--receive-maximum", type=int)
    lg.add_argument("--batch-max", type=int)
    lg.add_argument("--max-bytes", type=int, help="larger payloads go to quarantine")
    lg.add_argument("--synchronous", choices=("FULL", "NORMAL"))
    lg.add_argument("--quarantine-max-rows-per-room", type=int, help="default 10000")
    lg.add_argument("--quarantine-max-bytes-per-room", type=int, help="default 50 MiB")
    lg.add_argument(
        "--quarantine-rate-per-room", type=float, help="rejections stored per second (default 20)"
    )
    lg.add_argument("--quarantine-burst-per-room", type=int, help="default 200")
    lg.add_argument("--retention-days", type=float, help="clinical data (default 400)")
    lg.add_argument("--quarantine-retention-days", type=float, help="default 30")
    lg.add_argument("--retention-interval-s", type=float)
    lg.add_argument("--ops-host", help="address of /metrics and /healthz (default 127.0.0.1)")
    lg.add_argument("--ops-port", type=int, help="serve /metrics and /healthz on this port")
    lg.add_argument("--pki-dir", type=Path, help="the broker's PKI copy: expiry metrics")
    lg.add_argument("-v", "--verbose", action="store_true")
    lg.set_defaults(func=_logger)


def _logger(args: argparse.Namespace) -> int:
    from broker.logger.config import ConfigError, LoggerConfig
    from broker.logger.service import run
    from broker.logger.store import StoreError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    keys = (
        "broker", "ca", "cert", "key", "db", "site", "also_sites", "client_id", "name",
        "share_group",
        "session_expiry_s", "receive_maximum", "batch_max", "max_bytes", "synchronous",
        "quarantine_max_rows_per_room", "quarantine_max_bytes_per_room",
        "quarantine_rate_per_room", "quarantine_burst_per_room",
        "retention_days", "quarantine_retention_days", "retention_interval_s",
        "ops_host", "ops_port", "pki_dir",
    )  # fmt: skip
    try:
        cfg = LoggerConfig.load(args.config, {k: getattr(args, k) for k in keys})
        return run(cfg)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc))
    except (OSError, ssl.SSLError, StoreError) as exc:  # unreadable key, unwritable db, ...
        return _fail(f"logger cannot start: {exc}")


# -- log export / rooms ------------------------------------------------------------------
def _register_log(sub: argparse._SubParsersAction[Any]) -> None:
    from broker.logger.export import FORMATS, KINDS

    lg = sub.add_parser("log", help="read the logger's database")
    lg_sub = lg.add_subparsers(dest="log_command", metavar="ACTION")
    lg_sub.required = True
    exp = lg_sub.add_parser("export", help="vitals, events, calls, sessions or quarantine")
    exp.add_argument("--db", type=db_arg, required=True)
    exp.add_argument("--site", required=True)
    exp.add_argument("--room")
    exp.add_argument("--kind", choices=KINDS, help="what to export (csv, ndjson)")
    exp.add_argument("--format", choices=(*FORMATS, "fhir"), default="csv")
    exp.add_argument(
        "--since", help="inclusive, RFC 3339 or date (on the site's clock, --timezone, if no zone)"
    )
    exp.add_argument("--until", help="exclusive")
    exp.add_argument("--out", type=Path, help="file (default: stdout)")
    exp.add_argument(
        "--timezone", metavar="ZONE",
        help="the site's time zone (IANA name; default $ROOMCTL_TIMEZONE, else UTC): the "
        "local_time column and dates in --since/--until; stored times stay UTC",
    )  # fmt: skip
    fhir = exp.add_argument_group("FHIR (--format fhir: one room, a session or a time range)")
    fhir.add_argument("--session", help="the session's id (its start to its end)")
    fhir.add_argument("--patient-ref", help="Patient/<id> in the clinic's record (never guessed)")
    fhir.add_argument("--transaction", action="store_true", help="a transaction bundle")
    fhir.add_argument("--post", metavar="URL", help="send it to this FHIR server base URL")
    fhir.add_argument("--post-ca", type=Path, help="CA file for an https server")
    fhir.add_argument("--post-attempts", type=int, default=4, help="tries in all (default 4)")
    exp.set_defaults(func=_log_export)
    rooms = lg_sub.add_parser("rooms", help="every room the logger knows, latest state")
    rooms.add_argument("--db", type=db_arg, required=True)
    rooms.add_argument("--json", action="store_true")
    rooms.set_defaults(func=_log_rooms)
    mig = lg_sub.add_parser(
        "migrate", help="create or migrate the schema (as the database's owner), then exit"
    )
    mig.add_argument("--db", type=db_arg, required=True)
    mig.add_argument("--grant-logger", metavar="ROLE", help="PostgreSQL: the loggers' role")
    mig.add_argument("--grant-board", metavar="ROLE", help="PostgreSQL: the board's role")
    mig.set_defaults(func=_log_migrate)


def _log_migrate(args: argparse.Namespace) -> int:
    """Provisioning runs this as the schema's owner, so the loggers' role needs no DDL right."""
    from broker.logger.store import StoreError, open_store

    try:
        open_store(args.db).close()
        if args.grant_logger or args.grant_board:
            if isinstance(args.db, Path):
                return _fail("--grant-logger/--grant-board are for a PostgreSQL --db")
            from broker.logger.store.postgres import grant_roles

            grant_roles(args.db, args.grant_logger, args.grant_board)
    except (StoreError, OSError, RuntimeError) as exc:
        return _fail(f"cannot migrate: {exc}")
    print(f"{args.db if isinstance(args.db, Path) else 'the database'}: schema up to date")
    return 0


def _log_export(args: argparse.Namespace) -> int:
    from broker.logger.export import export, parse_time
    from broker.logger.store import StoreError, open_store
    from contract import sitetime

    if isinstance(args.db, Path) and not args.db.exists():
        return _fail(f"no database at {args.db}")
    if args.format == "fhir":
        return _log_export_fhir(args)
    if args.kind is None:
        return _fail("--kind is required for csv and ndjson")
    try:
        tz = sitetime.zone_from(args.timezone)
    except ValueError as exc:
        return _fail(str(exc))
    store = open_store(args.db, readonly=True)
    try:
        since = parse_time(args.since, tz) if args.since else None
        until = parse_time(args.until, tz) if args.until else None
        if args.out:
            with args.out.open("w", newline="") as fh:
                n = export(
                    store, fh, args.kind, args.format, args.site, args.room, since, until, tz
                )
        else:
            n = export(
                store, sys.stdout, args.kind, args.format, args.site, args.room, since, until, tz
            )
    except (ValueError, StoreError) as exc:
        return _fail(str(exc))
    finally:
        store.close()
    span = f"{sitetime.stamp(since, tz) if since else 'the start'} to " + (
        sitetime.stamp(until, tz) if until else "now"
    )
    print(f"{n} {args.kind} row(s), {span} (the site's clock, {tz.key}; local_time column)",
          file=sys.stderr)  # fmt: skip
    return 0


def _log_export_fhir(args: argparse.Namespace) -> int:
    from broker.logger.export import parse_time
    from broker.logger.fhir import ExportScope, check_patient_ref
    from broker.logger.fhir_export import build_bundle, post_bundle, session_scope
    from broker.logger.store import open_store
    from contract import sitetime

    if args.room is None:
        return _fail("--format fhir needs --room (a bundle covers one room)")
    if args.session is None and args.since is None:
        return _fail("--format fhir needs --session ID or --since (and optionally --until)")
    if (args.transaction or args.post) and not args.patient_ref:
        return _fail("--transaction and --post need --patient-ref: the record files by patient")
    try:
        patient = check_patient_ref(args.patient_ref) if args.patient_ref else None
        store = open_store(args.db, readonly=True)
        try:
            kw = {"patient_ref": patient, "transaction": args.transaction}
            if args.session:
                scope = session_scope(store, args.site, args.room, args.session, **kw)
            else:
                tz = sitetime.zone_from(args.timezone)
                since = parse_time(args.since, tz)
                until = parse_time(args.until, tz) if args.until else None
                scope = ExportScope(args.site, args.room, since, until, **kw)
            bundle, summary = build_bundle(store, scope)
        finally:
            store.close()
    except ValueError as exc:
        return _fail(str(exc))
    text = json.dumps(bundle, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    elif not args.post:
        sys.stdout.write(text + "\n")
    print(summary.text(), file=sys.stderr)
    if patient is None:
        print("no --patient-ref: observations carry no subject and claim no profile",
              file=sys.stderr)  # fmt: skip
    if not args.post:
        return 0
    try:
        outcome = post_bundle(
            args.post, bundle, attempts=args.post_attempts,
            cafile=str(args.post_ca) if args.post_ca else None,
            token=os.environ.get("ROOMCTL_FHIR_TOKEN") or None,
        )  # fmt: skip
    except (ValueError, OSError, ssl.SSLError) as exc:
        return _fail(str(exc))
    print(outcome.text(), file=sys.stderr)
    return 0 if outcome.ok else 1


def _log_rooms(args: argparse.Namespace) -> int:
    from broker.logger.export import format_rooms
    from broker.logger.store import StoreError, open_store

    if isinstance(args.db, Path) and not args.db.exists():
        return _fail(f"no database at {args.db}")
    store = open_store(args.db, readonly=True)
    try:
        rows = store.rooms()
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(format_rooms(rows))
    return 0
