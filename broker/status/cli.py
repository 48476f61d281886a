"""`roomctl status`: every room of a site live in the terminal (`--once`: print and exit)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from broker.board.cli import add_broker_args, add_timezone_arg


def _fail(message: str) -> int:
    print(f"roomctl: error: {message}", file=sys.stderr)
    return 2


def register(sub: argparse._SubParsersAction[Any]) -> None:
    status = sub.add_parser("status", help="every room of a site live in the terminal")
    add_broker_args(status)
    status.add_argument("--once", action="store_true", help="print the overview and exit")
    status.add_argument("--wait", type=float, default=3.0, help="--once: max seconds to gather")
    status.add_argument(
        "--no-bell", action="store_true", help="do not ring the terminal bell for new calls"
    )
    status.add_argument(
        "--room", help="one room in detail: monitor, outbox, clock, uptime, version, certificate"
    )
    status.add_argument(
        "--watch-cert", type=Path, action="append", default=[], metavar="PATH",
        help="a certificate file, or a folder of .crt/.pem, to warn about 30 days before it "
        "expires (repeatable; --ca and --cert are always watched)",
    )  # fmt: skip
    add_timezone_arg(status)
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from broker.status.tui import run_status
    from contract import sitetime, topics
    from contract.mqtt import BrokerEndpoint

    if not args.broker or not args.site:
        return _fail("roomctl status needs --broker URL and --site S")
    try:
        topics.check_ident("site", args.site)
        if args.room is not None:
            topics.check_ident("room", args.room)
        endpoint = BrokerEndpoint.from_url(args.broker, args.ca, args.cert, args.key)
        tz = sitetime.zone_from(args.timezone)
    except ValueError as exc:
        return _fail(str(exc))
    return run_status(
        endpoint,
        args.site,
        once=args.once,
        wait_s=args.wait,
        watch_certs=tuple(args.watch_cert),
        bell=not args.no_bell,
        room=args.room,
        tz=tz,
    )
