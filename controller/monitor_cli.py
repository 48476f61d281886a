"""`roomctl monitor decode` and `roomctl monitor simulate`: the bedside monitor tools.

decode: bytes from a file or stdin through the same sans-IO parser the room uses; one JSON
object per reading on stdout (NDJSON, the vitals field names of the message contract) and
a summary of accepted and rejected frames on stderr.

simulate: a simulated monitor on a pty or TCP (see firmware_py/monitors/simulate.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from contract.vitals import Reading, vitals_fields
from firmware_py.monitors.dialect import AUTO, DIALECTS, DialectError, DialectSet, read_map_file
from firmware_py.monitors.hl7_pcd01 import Hl7Parser, split_plain_messages
from firmware_py.monitors.parsers import PROTOCOLS, make_parser
from firmware_py.monitors.simulate import (
    FAULTS,
    HL7_DIALECTS,
    SimulatorOptions,
    run_hl7_client,
    run_pty,
    run_tcp_server,
)

SIMULATE_EPILOG = """\
transports:
  --pty             create a pseudo-terminal; its slave path (e.g. /dev/pts/7) is the
                    first line on stdout. The room reads it with
                    --monitor-transport serial --monitor-address PATH (or the --pty-link
                    symlink, which survives --fault unplug like a /dev/serial/by-id path).
  --tcp HOST:PORT   masimo, nonin-df2, nonin-df7: the simulator LISTENS on HOST:PORT, as a
                    serial-to-network bridge does; the room connects with
                    --monitor-transport tcp-client. Port 0 picks a free port; the bound
                    HOST:PORT is the first line on stdout.
                    hl7: the simulator CONNECTS to the room's MLLP listener at HOST:PORT
                    (room: --monitor-transport mllp-listen), sends ORU^R01 once a second
                    and waits for each ACK, re-sending when none comes.

trace: pre-check 5 min, infusion 40 min (heart rate and blood pressure rise), recovery
45 min (they settle); --desat adds a 2-minute desaturation 20 min into the infusion;
--hypertensive makes systolic pressure climb past 180 mmHg during the infusion.
--speed 60 plays a minute of the session per second. Faults repeat every 30 s of real
time, from 10 s to 18 s. Same --seed, same trace.
"""


def reading_json(reading: Reading) -> dict[str, Any]:
    """A reading as the vitals fields of the contract (plus protocol, flags and raw fields)."""
    return {**vitals_fields(reading), "received_at": reading.received_at}


def parse_hex(text: str) -> bytes:
    """Whitespace-separated hex byte pairs; lines starting with `#` are ignored."""
    tokens: list[str] = []
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            tokens.extend(line.split())
    out = bytearray()
    for token in tokens:
        if len(token) != 2:
            raise ValueError(f"{token!r} is not a hex byte pair")
        out.append(int(token, 16))
    return bytes(out)


def decode_bytes(
    protocol: str,
    data: bytes,
    emit: Any,
    dialect: str = AUTO,
    dialect_map: dict[str, Any] | None = None,
) -> tuple[int, int, int]:
    """Feed `data`; call `emit(reading)` for each; (accepted, rejected, readings)."""
    parser = make_parser(protocol, dialect=dialect, dialect_map=dialect_map)
    count = 0
    if isinstance(parser, Hl7Parser) and b"\x0b" not in data:
        messages = split_plain_messages(data) or ([data] if data.strip() else [])
        for message in messages:
            parser.feed_message(message)
    else:
        parser.feed(data)
    for reading in parser.readings():
        emit(reading)
        count += 1
    if isinstance(parser, Hl7Parser) and parser.dialects_seen:
        seen = ", ".join(f"{name} x{n}" for name, n in sorted(parser.dialects_seen.items()))
        print(f"hl7 dialects: {seen}", file=sys.stderr)
    if isinstance(parser, Hl7Parser) and parser.unmapped:
        print("hl7 rows no table maps (a local map file may name them):", file=sys.stderr)
        for (code, name, unit), (n, sample) in sorted(parser.unmapped.items()):
            print(f"  {code}^{name} unit {unit or '-'}: x{n}, e.g. {sample}", file=sys.stderr)
    return parser.frames_accepted, parser.frames_rejected, count


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"roomctl monitor decode: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.hex:
        try:
            raw = parse_hex(raw.decode("ascii", "replace"))
        except ValueError as exc:
            print(f"roomctl monitor decode: --hex input: {exc}", file=sys.stderr)
            return 2
    if args.protocol != "hl7" and (args.dialect != AUTO or args.dialect_map):
        print("roomctl monitor decode: --dialect applies to --protocol hl7 only", file=sys.stderr)
        return 2
    try:
        local_map = read_map_file(Path(args.dialect_map)) if args.dialect_map else None
        DialectSet(args.dialect, local_map)
    except DialectError as exc:
        print(f"roomctl monitor decode: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout

    def emit(reading: Reading) -> None:
        out.write(json.dumps(reading_json(reading), separators=(",", ":")) + "\n")

    accepted, rejected, readings = decode_bytes(args.protocol, raw, emit, args.dialect, local_map)
    out.flush()
    print(
        f"{args.protocol}: {readings} readings, {accepted} frames accepted, {rejected} rejected",
        file=sys.stderr,
    )
    return 1 if readings == 0 and rejected > 0 else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.dialect != "mdc" and args.protocol != "hl7":
        print("roomctl monitor simulate: --dialect applies to --protocol hl7 only", file=sys.stderr)
        return 2
    opts = SimulatorOptions(
        protocol=args.protocol,
        speed=args.speed,
        desat=args.desat,
        hypertensive=args.hypertensive,
        fault=args.fault,
        duration=args.duration,
        seed=args.seed,
        dialect=args.dialect,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.pty:
            stats = run_pty(opts, sys.stdout, stop, Path(args.pty_link) if args.pty_link else None)
        elif args.protocol == "hl7":
            stats = run_hl7_client(opts, args.tcp, sys.stdout, stop)
        else:
            stats = run_tcp_server(opts, args.tcp, sys.stdout, stop)
    except (OSError, ValueError) as exc:
        print(f"roomctl monitor simulate: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps({"protocol": args.protocol, **stats}), file=sys.stderr)
    return 0


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `monitor decode` and `monitor simulate` to `roomctl`."""
    monitor = sub.add_parser("monitor", help="bedside monitor tools: decode captures, simulate")
    msub = monitor.add_subparsers(dest="monitor_command", metavar="ACTION")
    msub.required = True

    dec = msub.add_parser(
        "decode",
        help="decode captured monitor bytes to NDJSON readings",
        description="Decode monitor output to one JSON reading per line; summary on stderr. "
        "hl7 accepts MLLP-framed bytes or plain messages starting at MSH (CR, LF or CRLF).",
    )
    dec.add_argument("--protocol", required=True, choices=PROTOCOLS)
    dec.add_argument(
        "--hex",
        action="store_true",
        help="input is whitespace-separated hex byte pairs; lines starting with # are ignored",
    )
    dec.add_argument(
        "--dialect",
        choices=(AUTO, *DIALECTS),
        default=AUTO,
        help="hl7: the monitor's dialect (default auto: from each message's header where "
        "safe; see docs/MONITORS.md)",
    )
    dec.add_argument(
        "--dialect-map",
        metavar="FILE",
        help="hl7: a local map file (TOML, like the dialect tables) laid over the dialect",
    )
    dec.add_argument("file", metavar="FILE|-", help="capture file, or - for stdin")
    dec.set_defaults(func=cmd_decode)

    sim = msub.add_parser(
        "simulate",
        help="run a simulated monitor on a pty or TCP",
        description="A simulated bedside monitor playing a ketamine session.",
        epilog=SIMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--protocol", required=True, choices=PROTOCOLS)
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", metavar="HOST:PORT", help="see 'transports' below")
    sim.add_argument(
        "--speed",
        type=positive_float,
        default=1.0,
        help="trace seconds per real second (default 1)",
    )
    sim.add_argument("--desat", action="store_true", help="include a desaturation episode")
    sim.add_argument(
        "--hypertensive",
        action="store_true",
        help="systolic pressure climbs past 180 mmHg during the infusion",
    )
    sim.add_argument("--fault", choices=FAULTS, help="inject a fault every 30 s (10-18 s)")
    sim.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        help="stop after S real seconds (default: run until stopped)",
    )
    sim.add_argument("--seed", type=int, default=0, help="seed of the patient and noise")
    sim.add_argument(
        "--dialect",
        choices=HL7_DIALECTS,
        default="mdc",
        help="hl7: GE-style IHE PCD-01 (mdc, default) or Mindray's legacy HL7 2.3.1 (one "
        "message per module, NIBP in its own aperiodic message)",
    )
    sim.add_argument(
        "--pty-link", metavar="PATH", help="with --pty: keep a symlink to the current slave at PATH"
    )
    sim.set_defaults(func=cmd_simulate)
