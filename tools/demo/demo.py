"""The simulated clinic on one machine, on loopback (`python -m tools.demo`, `make demo`).

Starts Mosquitto with the production-style configuration (TLS, client certificates from a
PKI made in a temporary folder, the real ACL plus the simulation grants), the logger with
SQLite, the board (`--no-auth`), and six simulated rooms (real room daemons with mock GPIO),
each reading its own simulated bedside monitor over a pty or TCP. Then it plays a scripted
clinic day (`script.py`) and shows every room live. At the end it compares
every room's outbox with the logger's database (`summary.py`). Every process it
started is stopped on `--duration`, at the end of the day, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.logger.store import StoreError, open_store
from broker.mosquitto.conf import BrokerSettings, current_user, write_config
from broker.mosquitto.pki import Identity, Pki
from broker.mosquitto.run import Mosquitto, free_port
from contract import topics
from contract.mqtt import BrokerEndpoint
from controller.outbox_audit import read_outbox
from tools.demo import script
from tools.demo.summary import summarize
from tools.demo.view import ClinicView

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
        wait_for(lambda: self.db.exists(), 30, "the logger's database")
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
            # the probe slips off now and then (10-18 s of every 30 s, real time): the
            # Masimo raises its own alarm, which the room shows as a monitor alarm
            cmd += ["--fault", "sensor-off"]
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
            view.command(room, "phase", phase=arg, by=script.NURSE)
        elif kind in ("press", "release"):
            view.publish(topics.sim_button(script.SITE, room), {"button": arg, "action": kind})
        elif kind == "claim":
            call = view.call_of(room)
            calls = call.get("calls") or [call]
            call_id = next((c.get("call_id") for c in calls if arg in ("", c.get("type"))), None)
            if call_id:
                view.command(room, "claim", call_id=call_id, by=script.NURSE)
        elif kind == "cord":
            view.publish(topics.sim_button(script.SITE, room), {"button": "cord", "action": arg})
        elif kind == "cleaning":
            minutes = float(arg) / self.speed / 60
            view.command(room, "cleaning", minutes=round(minutes, 4), by=script.NURSE)
        elif kind == "screens":
            view.screens(room, closed=arg == "closed")
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
            wait_for(self._logger_caught_up, 30, "the logger to store everything")
            self._stop("logger")
            summary = summarize(self.db, script.SITE, {r: self.room_dir(r) for r in self.rooms})
        for key in list(self.procs):
            self._stop(key)
        self.broker.stop()
        return summary

    def _logger_caught_up(self) -> bool:
        store = open_store(self.db, readonly=True)
        try:
            for room in self.rooms:
                path = self.room_dir(room) / "outbox.sqlite3"
                if not path.exists():
                    continue
                box = read_outbox(path)
                expected = box.last_seq - len(box.pending) - box.vitals_thinned
                expected -= box.gap_seqs_upto(box.last_seq)  # unstored telemetry (issue 17)
                if len(store.stored_seqs(script.SITE, room, box.epoch)) < expected:
                    return False
            return True
        except StoreError:
            return False
        finally:
            store.close()

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


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            print(f"warning: gave up waiting for {what} after {timeout:.0f} s", flush=True)
            return
        time.sleep(0.1)
