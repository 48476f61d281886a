"""`roomctl demo`: the whole clinic on one machine, on loopback.

Starts Mosquitto with the production-style configuration (TLS, client certificates from a
PKI made in a temporary folder, the real ACL plus the simulation grants), the logger with
SQLite, the board (`--no-auth`), and six simulated rooms (real room daemons with mock GPIO),
each reading its own simulated bedside monitor over a pty or TCP. Then it plays a scripted
clinic day (`broker/demo_script.py`) and shows every room live. At the end it compares
every room's outbox with the logger's database (`broker/demo_summary.py`). Every process it
started is stopped on `--duration`, at the end of the day, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker import demo_script as script
from broker.demo_summary import summarize
from broker.demo_view import ClinicView
from broker.mosquitto_conf import BrokerSettings, current_user, write_config
from broker.mosquitto_run import Mosquitto, free_port, wait_port
from broker.pki import Identity, Pki
from contract import topics
from contract.mqtt import BrokerEndpoint
from controller.outbox import read_outbox

ROOMCTL = [sys.executable, "-m", "controller.cli"]


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.speed = float(args.speed)
        self.rooms = [f"{101 + i}" for i in range(args.rooms)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.monitor_cmds: dict[str, list[str]] = {}
        self.stop_event = threading.Event()
        self.day_over = threading.Event()
        self.day_over_at = 0.0
        self.own_base = not args.state_dir
        self.base = Path(args.state_dir or tempfile.mkdtemp(prefix="roomctl-demo-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.db = self.base / "clinic.sqlite3"
        self.pki = Pki.init(self.base / "pki", script.SITE)
        for room in self.rooms:
            self.pki.issue("room", room)
        for name in (script.NURSE, "board"):
            self.pki.issue("staff", name)
        self.pki.issue("logger")
        self.tls_port = free_port()
        self.board_port = args.board_port or _free_or(8080)
        state = self.base / "mosquitto"
        state.mkdir(exist_ok=True)
        settings = BrokerSettings(
            site=script.SITE,
            pki_dir=self.pki.root,
            tls_port=self.tls_port,
            bind="127.0.0.1",
            state_dir=state,
            log_file=state / "mosquitto.log",
            run_as=current_user(),
            autosave_interval=5,
            simulation=True,
        )
        conf, _ = write_config(settings, self.base / "mosquitto.conf")
        self.broker = Mosquitto(state, port=self.tls_port, config_text=conf.read_text())
        self.url = f"mqtts://127.0.0.1:{self.tls_port}"

    # -- processes ---------------------------------------------------------------------

    def tls_args(self, cn: str) -> list[str]:
        cert, key = self.pki.client_paths(_identity(cn))
        return ["--ca", str(self.pki.ca_cert), "--cert", str(cert), "--key", str(key)]

    def endpoint(self, cn: str) -> BrokerEndpoint:
        cert, key = self.pki.client_paths(_identity(cn))
        return BrokerEndpoint.from_url(self.url, self.pki.ca_cert, cert, key)

    def _spawn(self, key: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        with open(self.base / f"{key}.log", "ab") as log:  # the child keeps its own fd
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs[key] = proc
        return proc

    def _stop(self, key: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        proc = self.procs.pop(key, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def start_central(self) -> None:
        self.broker.start()
        self._spawn(
            "logger",
            [
                *ROOMCTL,
                "logger",
                "--broker",
                self.url,
                *self.tls_args("logger"),
                "--db",
                str(self.db),
                "--site",
                script.SITE,
            ],
        )
        _wait_for(lambda: self.db.exists(), 30, "the logger's database")
        self._spawn(
            "board",
            [
                *ROOMCTL,
                "board",
                "--broker",
                self.url,
                *self.tls_args("staff-board"),
                "--site",
                script.SITE,
                "--db",
                str(self.db),
                "--no-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.board_port),
            ],
        )

    def room_dir(self, room: str) -> Path:
        return self.base / f"room-{room}"

    def start_monitor(self, index: int, room: str) -> dict[str, str]:
        protocol, transport = script.MONITORS[index % len(script.MONITORS)]
        cmd = [
            *ROOMCTL,
            "monitor",
            "simulate",
            "--protocol",
            protocol,
            "--speed",
            f"{script.TRACE_SPEED * self.speed:.1f}",
            "--seed",
            str(index + 1),
        ]
        if index == script.CALL_ROOM:
            cmd.append("--desat")
        if index == script.BP_ROOM:
            cmd.append("--hypertensive")
        if transport == "serial":
            link = self.room_dir(room) / "monitor-tty"
            cmd += ["--pty", "--pty-link", str(link)]
            address = str(link)
        else:
            port = free_port()
            cmd += ["--tcp", f"127.0.0.1:{port}"]
            address = f"127.0.0.1:{port}"
        self.monitor_cmds[room] = cmd
        self._spawn(f"monitor-{room}", cmd)
        return {"protocol": protocol, "transport": transport, "address": address}

    def start_rooms(self) -> None:
        for index, room in enumerate(self.rooms):
            state = self.room_dir(room)
            state.mkdir(exist_ok=True)
            monitor = self.start_monitor(index, room)
            cert, key = self.pki.client_paths(_identity(f"room-{room}"))
            cfg = state / "room.toml"
            cfg.write_text(
                script.room_config_text(
                    room,
                    state,
                    self.url,
                    {"ca": self.pki.ca_cert, "cert": cert, "key": key},
                    monitor,
                    self.speed,
                )
            )
            self.start_room(room)
            print(
                f"  room {room}: {monitor['protocol']} monitor over {monitor['transport']}",
                flush=True,
            )

    def start_room(self, room: str) -> None:
        cfg = self.room_dir(room) / "room.toml"
        self._spawn(f"room-{room}", [*ROOMCTL, "room", "run", "--config", str(cfg)])

    # -- the scripted day ----------------------------------------------------------------

    def play(self, view: ClinicView, note: Callable[[str], None]) -> None:
        deadline = time.monotonic() + 60
        while not view.all_online():  # commands sent before a room subscribes are lost
            if time.monotonic() > deadline:
                note("not every room came online within 60 s; starting anyway")
                break
            if self.stop_event.wait(0.1):
                return
        note("all rooms online: the clinic day starts")
        t0 = time.monotonic()
        for step in script.clinic_day(len(self.rooms)):
            if self.stop_event.wait(max(0.0, t0 + step.at / self.speed - time.monotonic())):
                return
            room = self.rooms[step.room]
            self.do(step, room, view)
            if step.note:
                note(f"room {room}: {step.note}")
        note("the scripted day is over")
        self.day_over_at = time.monotonic()
        self.day_over.set()

    def do(self, step: script.Step, room: str, view: ClinicView) -> None:
        kind, _, arg = step.what.partition(":")
        if kind == "phase":
            view.publish(topics.cmd(script.SITE, room, "phase"), {"phase": arg, "by": script.NURSE})
        elif kind in ("press", "release"):
            view.publish(topics.sim_button(script.SITE, room), {"button": arg, "action": kind})
        elif kind == "claim":
            call_id = view.call_of(room).get("call_id")
            if call_id:
                view.publish(
                    topics.cmd(script.SITE, room, "claim"), {"call_id": call_id, "by": script.NURSE}
                )
        elif kind == "kill-pi":
            self._stop(f"room-{room}", signal.SIGKILL)
        elif kind == "start-pi":
            self.start_room(room)
        elif kind == "unplug-monitor":
            self._stop(f"monitor-{room}", signal.SIGKILL)
        elif kind == "plug-monitor":
            self._spawn(f"monitor-{room}", self.monitor_cmds[room])

    # -- the end ---------------------------------------------------------------------------

    def wind_down(self) -> dict[str, Any] | None:
        """Stop monitors and rooms cleanly, let the logger catch up, then compare."""
        self.stop_event.set()
        for room in self.rooms:
            self._stop(f"monitor-{room}")
        for room in self.rooms:
            self._stop(f"room-{room}")  # a clean stop drains the outbox first
        summary = None
        if self.db.exists() and "logger" in self.procs:
            _wait_for(self._logger_caught_up, 30, "the logger to store everything")
            self._stop("logger")
            summary = summarize(self.db, script.SITE, {r: self.room_dir(r) for r in self.rooms})
        for key in list(self.procs):
            self._stop(key)
        self.broker.stop()
        return summary

    def _logger_caught_up(self) -> bool:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            for room in self.rooms:
                path = self.room_dir(room) / "outbox.sqlite3"
                if not path.exists():
                    continue
                box = read_outbox(path)
                expected = box.last_seq - len(box.pending) - box.vitals_thinned
                stored = db.execute(
                    "SELECT COUNT(*) FROM messages WHERE site = ? AND room = ?", (script.SITE, room)
                ).fetchone()[0]
                if stored < expected:
                    return False
            return True
        except sqlite3.Error:
            return False
        finally:
            db.close()

    def cleanup(self) -> None:
        if self.own_base and not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _identity(cn: str) -> Identity:
    ident = Identity.from_cn(cn)
    if ident is None:
        raise ValueError(f"not an identity: {cn}")
    return ident


def _free_or(port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            return free_port()


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            print(f"warning: gave up waiting for {what} after {timeout:.0f} s", flush=True)
            return
        time.sleep(0.1)


def _run(args: argparse.Namespace) -> int:
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
        view = ClinicView(demo.endpoint(f"staff-{script.NURSE}"), script.SITE, demo.rooms)
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
                screen.update(view.table(time.monotonic() - started, title))
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
            f"  call in room {c['room']}: {c['priority']}, {c['status']}, claimed after {resp}"
            f" by {c['claimed_by'] or '-'}"
        )
    if s.get("database"):
        print(f"  database: {s['database']}")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("demo", help="run a whole simulated clinic on this machine")
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
    p.set_defaults(func=_run)
