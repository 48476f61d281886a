"""`roomctl fleet simulate`: load the central side with simulated sites and rooms."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands to `roomctl`."""
    fleet = sub.add_parser("fleet", help="simulated sites and rooms (load tests)")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION")
    fleet_sub.required = True
    sim = fleet_sub.add_parser("simulate", help="publish what N sites x M rooms publish")
    sim.add_argument("--sites", type=int, required=True)
    sim.add_argument("--rooms", type=int, required=True, help="rooms per site")
    sim.add_argument(
        "--broker",
        action="append",
        required=True,
        help="mqtt(s)://host:port: once for all sites, or once per site in order",
    )
    sim.add_argument("--ca", type=Path)
    sim.add_argument("--cert", type=Path, help="an identity allowed to write the rooms' topics")
    sim.add_argument("--key", type=Path)
    sim.add_argument("--rate", type=float, default=1.0, help="ticks per second (vitals at 1 Hz)")
    sim.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    sim.add_argument("--session-ticks", type=int, default=240, help="ticks per session cycle")
    sim.add_argument("--call-every", type=int, default=120, help="ticks between a room's calls")
    sim.add_argument("--site-prefix", default="site", help="site ids are PREFIX01, PREFIX02, ...")
    sim.add_argument("--client-prefix", default="fleet")
    sim.add_argument(
        "--outbox-rooms",
        type=int,
        default=0,
        help="route this many rooms (spread over the fleet) through the room's real outbox "
        "and publisher (needs the room package installed)",
    )
    sim.add_argument(
        "--outbox-dir",
        type=Path,
        help="their state folders (<dir>/<site>/<room>; kept, so a second run continues each "
        "room's epoch); default: a temporary folder removed at the end",
    )
    sim.add_argument("--stats", type=Path, help="write the published counts here (JSON)")
    sim.set_defaults(func=_simulate)


def _outbox_room_class() -> Any:
    """The room package's `OutboxRoom`, through the `roomctl.fleet` entry point (the central
    side never imports the room package); ValueError when it is not installed."""
    from importlib.metadata import entry_points

    found = entry_points(group="roomctl.fleet", name="outbox_room")
    if not found:
        raise ValueError("--outbox-rooms needs the room package (roomctl[room]) installed")
    return next(iter(found)).load()


def _simulate(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="roomctl-fleet-") as tmp:
        return _simulate_in(args, args.outbox_dir or Path(tmp))


def _simulate_in(args: argparse.Namespace, outbox_dir: Path) -> int:
    from broker.fleet.simulate import Fleet, FleetSpec, sample_rooms
    from contract.mqtt import BrokerEndpoint

    numbers = [args.sites, args.rooms, args.rate, args.duration]
    numbers += [args.session_ticks, args.call_every]
    if min(numbers) <= 0:
        print(
            "roomctl: error: --sites, --rooms, --rate, --duration, --session-ticks and "
            "--call-every must be > 0",
            file=sys.stderr,
        )
        return 2
    try:
        spec = FleetSpec(
            args.sites,
            args.rooms,
            args.rate,
            args.site_prefix,
            session_ticks=args.session_ticks,
            call_every=args.call_every,
        )
        endpoints = [BrokerEndpoint.from_url(u, args.ca, args.cert, args.key) for u in args.broker]
        sampled = sample_rooms(spec, args.outbox_rooms)
        paths = {}
        if sampled:
            outbox_room = _outbox_room_class()
            paths = {(s, r): outbox_room(s, r, outbox_dir / s / r) for s, r in sampled}
        fleet = Fleet(spec, endpoints, args.client_prefix, paths).start()
    except (ValueError, TimeoutError, OSError) as exc:
        print(f"roomctl: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print(f"simulating {args.sites} sites x {args.rooms} rooms", file=sys.stderr, flush=True)
    try:
        fleet.run(args.duration, stop)
    finally:
        acked = fleet.stop()
    stats = {
        "acked": acked,
        "ticks": fleet.ticks,
        "late_ticks": fleet.late_ticks,
        "published": fleet.published,
        "outbox_rooms": {s: [r for ss, r in sampled if ss == s] for s in {ss for ss, _ in sampled}},
        "sites": {s.site: {r.room: [r.epoch, r.seq] for r in s.rooms} for s in fleet.sites},
    }
    if args.stats:
        args.stats.write_text(json.dumps(stats))
    print(
        f"published {fleet.published} messages in {fleet.ticks} ticks ({fleet.late_ticks} late)",
        file=sys.stderr,
    )
    return 0
