"""`roomctl notify --broker URL --site S --config FILE`: the notifier (calls to phones)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from broker.board.cli import add_broker_args


def _fail(message: str) -> int:
    print(f"roomctl: error: {message}", file=sys.stderr)
    return 2


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("notify", help="route calls by tier to phones (webhook, ntfy)")
    add_broker_args(p)
    p.add_argument("--config", type=Path, required=True, help="the notifier's TOML file")
    p.add_argument("--ops-port", type=int, help="serve /metrics and /healthz on this port")
    p.add_argument("--ops-host", default="127.0.0.1", help="address of --ops-port (loopback)")
    p.set_defaults(func=_notify)


def _notify(args: argparse.Namespace) -> int:
    from contract import topics
    from contract.mqtt import BrokerEndpoint

    from .config import ConfigError, load
    from .service import Notifier

    if not args.broker or not args.site:
        return _fail("roomctl notify needs --broker URL and --site S")
    try:
        topics.check_ident("site", args.site)
        endpoint = BrokerEndpoint.from_url(args.broker, args.ca, args.cert, args.key)
        cfg = load(args.config)
    except (ValueError, ConfigError) as exc:
        return _fail(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    notifier = Notifier(cfg, endpoint, args.site)
    logging.getLogger("roomctl.notifier").info(
        "notifier %s for site %s: %d staff, state in %s",
        cfg.name, args.site, len(cfg.staff), cfg.state_db,
    )  # fmt: skip
    ops = None
    if args.ops_port is not None:
        from broker.ops.metrics import OpsServer

        ops = OpsServer(notifier.metrics.registry, notifier.health, args.ops_host, args.ops_port)
        ops.start()
    try:
        notifier.run(stop)
    finally:
        if ops is not None:
            ops.stop()
    return 0
