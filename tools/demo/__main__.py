"""`python -m tools.demo`: the whole clinic on one machine (see `demo.py`); `make demo`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.mosquitto.run import wait_port
from tools.demo import script
from tools.demo.demo import Demo
from tools.demo.view import ClinicView


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    demo = Demo(args)
    previous = signal.signal(signal.SIGTERM, lambda *a: demo.stop_event.set())
    summary: dict[str, Any] | None = None
    notes: list[str] = []
    view: ClinicView | None = None
    try:
        print(f"Board: http://127.0.0.1:{demo.board_port}/  (no login: demo only)", flush=True)
        print(
            f"Broker: {demo.url} (TLS, client certificates); state and logs in {demo.base}",
            flush=True,
        )
        demo.start_central()
        demo.start_rooms()
        wait_port("127.0.0.1", demo.board_port, 30)
        view = ClinicView(
            demo.endpoint(f"staff-{script.NURSE}"), script.SITE, demo.rooms, sender=script.NURSE
        )
        view.start()
        threading.Thread(target=demo.play, args=(view, notes.append), daemon=True).start()
        _show(demo, view, notes, started)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            if view is not None:
                view.stop()
            print("stopping every process ...", flush=True)
            summary = demo.wind_down()
        finally:
            demo.cleanup()
    if summary is not None:
        summary["seconds"] = round(time.monotonic() - started, 1)
        if demo.own_base and not args.keep:
            summary["database"] = None  # removed with the temporary folder (use --keep)
        _print_summary(summary)
        if args.summary:
            Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _show(demo: Demo, view: ClinicView, notes: list[str], started: float) -> None:
    deadline: float | None = started + float(demo.args.duration) if demo.args.duration else None

    def done() -> bool:
        """--duration, or else a few seconds after the scripted day ends."""
        now = time.monotonic()
        if deadline is not None:
            return now >= deadline
        return bool(demo.day_over.is_set() and now >= demo.day_over_at + 5)

    if sys.stdout.isatty() and not demo.args.no_table:
        from rich.live import Live

        title = f"roomctl demo, site '{script.SITE}'"
        with Live(view.table(0, title), refresh_per_second=4) as screen:
            while not demo.stop_event.wait(0.25) and not done():
                elapsed = time.monotonic() - started
                screen.update(view.table(elapsed, title, screen.console.width))
        for note in notes:
            print(f"  - {note}")
        return
    shown, last_line = 0, 0.0
    while not demo.stop_event.wait(0.5) and not done():
        for note in notes[shown:]:
            print(f"  - {note}", flush=True)
        shown = len(notes)
        if time.monotonic() - last_line >= 5:
            last_line = time.monotonic()
            print(view.progress_line(last_line - started), flush=True)
    for note in notes[shown:]:
        print(f"  - {note}", flush=True)


def _print_summary(s: dict[str, Any]) -> None:
    answered = [c for c in s["calls"] if c["response_s"] is not None]
    print(
        f"\nsummary: {s['rooms']} rooms, {s['vitals_published']} vitals published, "
        f"{s['vitals_logged']} logged, {s['events_logged']} events, {len(s['calls'])} calls "
        f"({len(answered)} claimed), {s['alerts_raised']} vital alerts; lost {s['lost']}, "
        f"duplicates {s['duplicates']}, quarantined {s['quarantined']}"
    )
    for c in s["calls"]:
        resp = "-" if c["response_s"] is None else f"{c['response_s']:.1f} s"
        print(
            f"  {c.get('type') or 'call'} call in room {c['room']}: {c['priority']}, "
            f"{c['status']}, claimed after {resp} by {c['claimed_by'] or '-'}"
        )
    n = s.get("nurse_call") or {}
    if n:
        print(
            f"  nurse call: {n['presence']} presence ({n['answered_by_presence']} calls answered "
            f"in the room), {n['assist']} staff assist, {n['bath']} bath, {n['cord_out']} cord "
            f"out ({n['cord_back']} put back, {n['cord_flapping']} flapping), {n['cleaning']} "
            f"cleaning ({n['ignored_in_cleaning']} presses ignored), {n['monitor_alarms']} "
            f"monitor alarms, {n['reminders']} reminders"
        )
    if s.get("database"):
        print(f"  database: {s['database']}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.demo", description="run a whole simulated clinic on this machine"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop after SECONDS (default: at the end of the scripted day)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time compression: 1 = a session takes about two minutes",
    )
    p.add_argument(
        "--rooms",
        type=int,
        default=6,
        choices=range(1, 21),
        metavar="N",
        help="number of simulated rooms (default 6)",
    )
    p.add_argument("--board-port", type=int, default=0, help="board port (default 8080 if free)")
    p.add_argument("--state-dir", help="keep logs, state and the database here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--summary", metavar="FILE", help="also write the end summary as JSON")
    p.add_argument(
        "--no-table", action="store_true", help="progress lines instead of the live table"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
