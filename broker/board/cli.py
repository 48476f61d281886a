"""`roomctl board` (web board) and `roomctl board user add|list|remove` (its accounts).

Transport (production serves the board over HTTPS; docs/BOARD.md, "HTTPS"):

- `--tls-cert/--tls-key`: uvicorn's own TLS (a server certificate from the clinic CA, `roomctl
  pki issue-web`); session cookies are `Secure`, responses carry HSTS. `--redirect-port P`
  adds a plain-HTTP listener that only redirects to the HTTPS port (`redirect.py`).
- Without TLS the board speaks plain HTTP only on loopback (demo, tests), unless
  `--insecure-http` says an HTTPS proxy in front of it terminates TLS (cookies stay `Secure`).

The board's accounts live in its own SQLite file (`--board-db`, default `board.sqlite` beside
the logger's `--db`), not in the logger's database: see `broker/board/users.py`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from broker.board.call_stats import parse_shifts
from broker.board.security import ServeLimits
from broker.logger.cli import db_arg

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _fail(message: str) -> int:
    print(f"roomctl: error: {message}", file=sys.stderr)
    return 2


def add_broker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", help="mqtts://host:8883 (or mqtt:// for development)")
    p.add_argument("--ca", type=Path, help="CA certificate (mqtts://)")
    p.add_argument("--cert", type=Path, help="client certificate (mqtts://)")
    p.add_argument("--key", type=Path, help="client key (mqtts://)")
    p.add_argument("--site")


def add_timezone_arg(p: argparse.ArgumentParser) -> None:
    """`--timezone ZONE`: the site's clock for every time shown (contract/sitetime.py)."""
    p.add_argument(
        "--timezone", metavar="ZONE",
        help="the site's time zone, an IANA name such as America/New_York (default: "
        "$ROOMCTL_TIMEZONE, else UTC); times are shown on its clock, stored in UTC",
    )  # fmt: skip


def register(sub: argparse._SubParsersAction[Any]) -> None:
    board = sub.add_parser("board", help="the staff board in the browser (and its accounts)")
    add_broker_args(board)
    board.add_argument("--db", type=db_arg, help="the logger's database (read-only: history)")
    board.add_argument("--board-db", type=Path, help="accounts/sessions (default: beside --db)")
    board.add_argument("--host", "--bind", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    board.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    board.add_argument("--tls-cert", type=Path, help="HTTPS: the board's server certificate")
    board.add_argument("--tls-key", type=Path, help="HTTPS: its private key")
    board.add_argument(
        "--redirect-port", type=int, help="with TLS: a plain-HTTP port that only redirects to it"
    )
    board.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain HTTP off loopback (only behind an HTTPS proxy)",
    )
    board.add_argument("--no-auth", action="store_true", help="no login (loopback only: demo)")
    board.add_argument("--session-hours", type=float, default=12.0, help="login lifetime")
    board.add_argument(
        "--secure-cookies", action="store_true", help="Secure cookies on loopback too (proxy)"
    )
    board.add_argument("--chromium", default="/usr/bin/chromium", help="for PDF reports")
    board.add_argument(
        "--paper", choices=("A4", "Letter"), default="A4", help="the PDF report's paper size"
    )
    board.add_argument(
        "--shifts", default="day=07:00-19:00,night=19:00-07:00", metavar="NAME=HH:MM-HH:MM,...",
        help="the site's shifts in local time, for the reports (default: two 12 h shifts)",
    )  # fmt: skip
    board.add_argument(
        "--watch-cert", type=Path, action="append", default=[], metavar="PATH",
        help="a certificate file, or a folder of .crt/.pem, to warn about 30 days before it "
        "expires (repeatable; the board's own --ca, --cert and --tls-cert are always watched)",
    )  # fmt: skip
    limits = ServeLimits()
    board.add_argument(
        "--request-timeout", type=float, default=limits.request_timeout_s, metavar="S",
        help=f"a request must arrive whole within S seconds (default {limits.request_timeout_s:g})",
    )  # fmt: skip
    board.add_argument(
        "--max-connections", type=int, default=limits.max_connections, metavar="N",
        help=f"open connections at most (default {limits.max_connections}; fewer if the "
        "open-files limit is lower)",
    )  # fmt: skip
    board.add_argument(
        "--max-per-address", type=int, default=limits.max_per_address, metavar="N",
        help=f"open connections from one address at most (default {limits.max_per_address})",
    )  # fmt: skip
    add_timezone_arg(board)
    board.add_argument("-v", "--verbose", action="store_true")
    board.set_defaults(func=_serve)
    board_sub = board.add_subparsers(dest="board_command", metavar="ACTION")
    user = board_sub.add_parser("user", help="staff accounts")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION")
    user_sub.required = True
    for name, helptext in (("add", "add (or --replace) an account"), ("list", "list accounts"),
                           ("remove", "remove an account (its sessions and streams end)"),
                           ("disable", "disable an account (its sessions and streams end)"),
                           ("enable", "enable a disabled account")):  # fmt: skip
        p = user_sub.add_parser(name, help=helptext)
        p.add_argument("--board-db", type=Path, help="default: board.sqlite beside --db")
        p.add_argument("--db", type=db_arg, help="the logger's database (locates board.sqlite)")
        if name != "list":
            p.add_argument("name")
        if name == "add":
            p.add_argument("--role", choices=("viewer", "nurse", "charge", "kiosk"), required=True)
            p.add_argument("--password-stdin", action="store_true", help="read it from stdin")
            p.add_argument("--replace", action="store_true", help="change an existing account")
        p.set_defaults(func=_user)


def board_db_path(board_db: Path | None, db: Path | str | None) -> Path | None:
    """--board-db, else $ROOMCTL_BOARD_DB, else board.sqlite beside the logger's --db."""
    if board_db is not None:
        return board_db
    if os.environ.get("ROOMCTL_BOARD_DB"):
        return Path(os.environ["ROOMCTL_BOARD_DB"])
    if isinstance(db, Path):  # a PostgreSQL URL locates nothing: give --board-db
        return db.parent / "board.sqlite"
    return None


def _operator() -> str:
    """Who ran a `roomctl board user` command, for the audit log: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (a container without one)
        return f"cli:uid {os.getuid()}"


def _user(args: argparse.Namespace) -> int:
    from broker.board.users import BoardDB, UserError

    path = board_db_path(args.board_db, args.db)
    if path is None:
        return _fail(
            "give --board-db PATH, set ROOMCTL_BOARD_DB, or give --db (the logger's database) "
            "to use board.sqlite beside it"
        )
    users = BoardDB(path)
    try:
        if args.user_command == "list":
            for name, role in users.users():
                print(f"{name}\t{role}")
            return 0
        if args.user_command == "remove":
            if not users.remove_user(args.name):
                return _fail(f"no user {args.name!r}")
            users.audit(_operator(), "user remove", None, json.dumps({"user": args.name}), "ok")
            print(f"removed {args.name}")
            return 0
        if args.user_command in ("disable", "enable"):
            if not users.set_disabled(args.name, args.user_command == "disable"):
                return _fail(f"no user {args.name!r}")
            detail = json.dumps({"user": args.name})
            users.audit(_operator(), f"user {args.user_command}", None, detail, "ok")
            print(f"{args.user_command}d {args.name}")
            return 0
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif not sys.stdin.isatty():
            return _fail(
                "no terminal to ask for the password: type it at a terminal, or pipe it "
                "in with --password-stdin"
            )
        else:
            try:
                password = getpass.getpass(f"password for {args.name}: ")
                again = getpass.getpass("again: ")
            except (EOFError, KeyboardInterrupt):
                print(file=sys.stderr)
                return _fail("no password given; nothing saved")
            if again != password:
                return _fail("the passwords differ")
        users.add_user(args.name, args.role, password, replace=args.replace)
        detail = json.dumps({"user": args.name, "role": args.role, "replace": args.replace})
        users.audit(_operator(), "user add", None, detail, "ok")
        print(f"{args.name} ({args.role}) saved in {path}")
        return 0
    except UserError as exc:
        return _fail(str(exc))
    finally:
        users.close()


def transport_refusal(args: argparse.Namespace) -> str | None:
    """Why these transport options are refused (None: they are fine)."""
    from broker.board.security import is_loopback_host

    if (args.tls_cert is None) != (args.tls_key is None):
        return "give both --tls-cert and --tls-key (HTTPS), or neither"
    tls = args.tls_cert is not None
    if args.redirect_port is not None and not tls:
        return "--redirect-port redirects to HTTPS: give --tls-cert and --tls-key"
    if not tls and not args.insecure_http and not is_loopback_host(args.host):
        return (
            f"plain HTTP on {args.host} is refused: give --tls-cert and --tls-key (HTTPS), or "
            "--insecure-http if an HTTPS proxy in front of the board terminates TLS"
        )
    return None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from broker.board.app import Board, BoardConfig
    from broker.board.security import is_loopback_host
    from broker.board.server import connection_table, serve_config
    from contract import sitetime, topics
    from contract.mqtt import BrokerEndpoint

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.request_timeout <= 0 or args.max_connections < 1 or args.max_per_address < 1:
        return _fail("--request-timeout, --max-connections and --max-per-address must be > 0")
    if not args.broker or not args.site:
        return _fail("roomctl board needs --broker URL and --site S (and --db PATH for history)")
    if args.no_auth and not is_loopback_host(args.host):
        return _fail(f"--no-auth is refused on {args.host}: only on loopback (127.0.0.1, ::1)")
    refusal = transport_refusal(args)
    if refusal is not None:
        return _fail(refusal)
    tls = args.tls_cert is not None
    board_db = board_db_path(args.board_db, args.db)
    if board_db is None:
        return _fail("give --board-db (always needed with a PostgreSQL --db) or --db FILE")
    try:
        topics.check_ident("site", args.site)
        shifts = parse_shifts(args.shifts)
        endpoint = BrokerEndpoint.from_url(args.broker, args.ca, args.cert, args.key)
        tz = sitetime.zone_from(args.timezone)
    except ValueError as exc:
        return _fail(str(exc))
    config = BoardConfig(
        site=args.site,
        endpoint=endpoint,
        logger_db=args.db,
        board_db=board_db,
        no_auth=args.no_auth,
        session_hours=args.session_hours,
        # Secure unless the board is plain HTTP on loopback (demo, tests): over TLS, and behind
        # an HTTPS proxy (--insecure-http), the browser sees https
        secure_cookies=tls or args.secure_cookies or not is_loopback_host(args.host),
        chromium=args.chromium,
        host=args.host,
        paper=args.paper,
        shifts=shifts,
        watch_certs=tuple(p for p in (args.tls_cert, *args.watch_cert) if p is not None),
        tz=tz,
    )
    try:
        board = Board(config)
    except ValueError as exc:  # a certificate that is not a staff identity
        return _fail(str(exc))
    if not config.no_auth and not board.users.users():
        print(
            f"roomctl: warning: no accounts in {board_db}; add one with "
            f"`roomctl board user add NAME --role nurse --board-db {board_db}`",
            file=sys.stderr,
        )
    limits = ServeLimits(
        request_timeout_s=args.request_timeout,
        max_connections=args.max_connections,
        max_per_address=args.max_per_address,
    )
    table = connection_table(limits)  # shared with the redirect: one process, one file budget
    server = uvicorn.Server(
        serve_config(
            board.app,
            limits,
            table,
            host=args.host,
            port=args.port,
            log_level="info" if args.verbose else "warning",
            timeout_graceful_shutdown=2,
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
        )
    )
    scheme = "https" if tls else "http"
    print(
        f"board for site {args.site} ({tz.key}) on {scheme}://{args.host}:{args.port}/",
        file=sys.stderr,
    )
    if args.redirect_port is None:
        server.run()
        return 0
    return _serve_with_redirect(server, args, limits, table)


def _serve_with_redirect(
    server: Any, args: argparse.Namespace, limits: ServeLimits, table: Any
) -> int:
    """The board's server in this thread, the redirect-only HTTP server in another (uvicorn
    handles signals in the main thread only: stopping the board stops the redirect too)."""
    import uvicorn

    from broker.board.redirect import HttpsRedirect
    from broker.board.server import serve_config

    try:
        sock = _listen(args.host, args.redirect_port)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.redirect_port}: {exc}")
    redirect = uvicorn.Server(
        serve_config(
            HttpsRedirect(args.port),
            limits,
            table,
            lifespan="off",
            log_level="info" if args.verbose else "warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(
        target=redirect.run, kwargs={"sockets": [sock]}, name="http-redirect", daemon=True
    )
    thread.start()
    print(
        f"http://{args.host}:{args.redirect_port}/ redirects to port {args.port}", file=sys.stderr
    )
    try:
        server.run()
    finally:
        redirect.should_exit = True
        thread.join(5)
        sock.close()
    return 0
