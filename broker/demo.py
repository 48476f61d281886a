"""`roomctl demo`: a whole simulated clinic on this machine.

Starts a Mosquitto on a free loopback port, several simulated rooms (real room daemons with
mock GPIO, each with its own simulated bedside monitor when available), plays a scripted
session compressed in time, and shows a live table of the rooms. Every process it starts
is stopped on exit, on `--duration`, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.mosquitto_run import Mosquitto, free_port
from controller import topics

SITE = "demo"
STAFF = "nurse.ana"
# One simulated monitor per room, every protocol and transport present.
MONITORS: tuple[tuple[str, str], ...] = (
    ("masimo", "serial"),
    ("nonin-df2", "tcp-client"),
    ("hl7", "mllp-listen"),
    ("nonin-df7", "serial"),
    ("masimo", "tcp-client"),
    ("hl7", "mllp-listen"),
)
# The scripted session (~34 s) plays the monitor's 90-minute ketamine trace.
TRACE_SPEED = 150.0


@dataclass
class RoomView:
    room: str
    availability: str = "?"
    phase: str = "?"
    since: str | None = None
    call: dict[str, Any] = field(default_factory=dict)
    vitals: dict[str, Any] = field(default_factory=dict)
    vitals_at: float = 0.0
    alerts: list[str] = field(default_factory=list)
    health: str = "?"
    events: int = 0
    last_event: str = ""


class ClinicView:
    """Live view of every room, fed by a paho subscriber (callbacks only update dicts)."""

    def __init__(self, url_port: int, rooms: list[str]):
        self.rooms = {r: RoomView(r) for r in rooms}
        self.lock = threading.Lock()
        self.counts = {"vitals": 0, "events": 0, "calls": 0}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-view-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *a: c.subscribe(topics.all_rooms_filter(SITE), qos=1)
        self.client.on_message = self._on_message
        self.port = url_port

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def all_online(self) -> bool:
        with self.lock:
            return all(v.availability == "online" for v in self.rooms.values())

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parsed = topics.parse_room_topic(msg.topic)
        if parsed is None or parsed.room not in self.rooms:
            return
        with self.lock:
            view = self.rooms[parsed.room]
            if parsed.leaf == "availability":
                view.availability = msg.payload.decode(errors="replace")
                return
            if parsed.leaf.startswith(("cmd/", "sim/")):
                return
            try:
                data = json.loads(msg.payload)
            except ValueError:
                return
            if parsed.leaf == "state":
                view.phase, view.since = data["phase"], data["since"]
                view.alerts = [a["name"] for a in data.get("alerts", [])]
            elif parsed.leaf == "call":
                view.call = data
            elif parsed.leaf == "vitals":
                view.vitals, view.vitals_at = data, time.monotonic()
                self.counts["vitals"] += 1
            elif parsed.leaf == "health":
                view.health = data.get("status_text", "?")
            elif parsed.leaf == "events":
                view.events += 1
                view.last_event = data["kind"]
                self.counts["events"] += 1
                if data["kind"] == "call_placed":
                    self.counts["calls"] += 1

    def table(self, elapsed: float) -> Any:
        from rich.table import Table

        t = Table(
            title=f"roomctl demo: site '{SITE}'  ({elapsed:.0f} s)  "
            "secondary notification system, not a medical alarm"
        )
        for col in (
            "room",
            "link",
            "phase",
            "in phase",
            "call",
            "SpO2",
            "pulse",
            "NIBP",
            "alerts",
            "health",
            "last event",
        ):
            t.add_column(col)
        now = time.time()
        with self.lock:
            for v in self.rooms.values():
                call = v.call
                call_text = "-"
                if call.get("status") not in (None, "idle"):
                    call_text = f"{call['priority']} {call['status']}"
                    if call.get("claimed_by"):
                        call_text += f" by {call['claimed_by']}"
                vit = v.vitals
                stale = time.monotonic() - v.vitals_at > 5

                def fmt(x: Any) -> str:
                    return "-" if x is None else f"{x:.0f}"

                nibp = (
                    f"{fmt(vit.get('nibp_sys'))}/{fmt(vit.get('nibp_dia'))}"
                    if vit.get("nibp_sys")
                    else "-"
                )
                in_phase = "-"
                if v.since:
                    from datetime import datetime

                    secs = now - datetime.fromisoformat(v.since.replace("Z", "+00:00")).timestamp()
                    in_phase = f"{int(secs // 60)}:{int(secs % 60):02d}"
                style = "dim" if stale else ""
                t.add_row(
                    v.room,
                    v.availability,
                    v.phase,
                    in_phase,
                    f"[bold red]{call_text}[/]" if "emergency" in call_text else call_text,
                    f"[{style}]{fmt(vit.get('spo2'))}[/]" if style else fmt(vit.get("spo2")),
                    fmt(vit.get("pulse_rate") or vit.get("heart_rate")),
                    nibp,
                    ", ".join(v.alerts) or "-",
                    v.health,
                    v.last_event,
                )
        return t

    def progress_line(self, elapsed: float) -> str:
        with self.lock:
            parts = [
                f"{v.room}:{v.availability}/{v.phase}/{v.call.get('status', '?')}"
                for v in self.rooms.values()
            ]
            return (
                f"[{elapsed:5.0f}s] vitals={self.counts['vitals']} events={self.counts['events']} "
                f"calls={self.counts['calls']}  " + "  ".join(parts)
            )


@dataclass(frozen=True)
class Step:
    at: float  # seconds of scripted time
    room_index: int
    what: str  # "phase:<p>", "press:<button>", "release:<button>", "claim"
    note: str = ""


def scripted_session() -> list[Step]:
    """A short clinic session; room 0 calls during infusion, room 1 has an emergency."""
    steps: list[Step] = []
    for i, offset in enumerate((0.0, 2.0, 4.0)):
        for t, phase in (
            (1, "pre_check"),
            (4, "infusion"),
            (16, "recovery"),
            (26, "discharge_ready"),
            (30, "idle"),
        ):
            steps.append(Step(t + offset, i, f"phase:{phase}"))
    steps += [
        Step(7, 0, "press:call", "the patient presses call during infusion"),
        Step(7.3, 0, "release:call"),
        Step(10, 0, "claim", "central staff claims the call"),
        Step(12, 0, "press:cancel", "the nurse cancels the call in the room"),
        Step(12.2, 0, "release:cancel"),
        Step(19, 1, "press:emergency", "emergency input"),
        Step(19.2, 1, "release:emergency"),
        Step(21, 1, "claim", "central staff claims the emergency"),
        Step(23, 1, "press:cancel", "the nurse cancels the emergency in the room"),
        Step(23.2, 1, "release:cancel"),
    ]
    return sorted(steps, key=lambda s: s.at)


def room_config_text(
    site: str, room: str, state_dir: Path, port: int, monitor: dict[str, str], speed: float = 1.0
) -> str:
    """A room config whose timings fit the scripted session (infusion 12 s, recovery 10 s)."""

    def minutes(script_seconds: float) -> str:
        return f"{script_seconds / speed / 60:.4f}"

    lines = [
        f'site = "{site}"',
        f'room = "{room}"',
        f'state_dir = "{state_dir}"',
        "simulate = true",
        "",
        "[broker]",
        f'url = "mqtt://127.0.0.1:{port}"',
        "reconnect_min_s = 0.5",
        "reconnect_max_s = 2",
        "",
        "[timing]",
        f"planned_pre_check_min = {minutes(4)}",
        f"planned_infusion_min = {minutes(11)}",  # runs a second over: shows the reminder
        f"planned_recovery_min = {minutes(9)}",
        f"min_recovery_min = {minutes(8)}",
        f"reminder_every_min = {minutes(5)}",
        f"escalate_normal_s = {20 / speed:.2f}",
        f"escalate_infusion_s = {10 / speed:.2f}",
        f"escalate_emergency_s = {1.5 / speed:.2f}",
        "health_every_s = 5",
        "",
    ]
    if monitor:
        lines += ["[monitor]"] + [f'{k} = "{v}"' for k, v in monitor.items()] + [""]
    return "\n".join(lines)


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rooms = [f"{101 + i}" for i in range(args.rooms)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stop_event = threading.Event()
        if args.state_dir:
            self.base = Path(args.state_dir)
            self.base.mkdir(parents=True, exist_ok=True)
            self.own_base = False
        else:
            self.base = Path(tempfile.mkdtemp(prefix="roomctl-demo-"))
            self.own_base = True
        self.broker = Mosquitto(self.base / "mosquitto")

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.base / log_name, "ab") as log:  # the child keeps its own fd
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def _monitor_for(self, index: int, room: str, state: Path) -> dict[str, str]:
        """Start room `index`'s simulated monitor; return the room's [monitor] settings."""
        protocol, transport = MONITORS[index % len(MONITORS)]
        trace_speed = str(round(TRACE_SPEED * self.args.speed, 1))
        sim = [
            sys.executable,
            "-m",
            "controller.cli",
            "monitor",
            "simulate",
            "--protocol",
            protocol,
            "--speed",
            trace_speed,
            "--seed",
            str(index + 1),
        ]
        if index == 0:
            sim.append("--desat")
        if transport == "serial":
            link = state / "monitor-tty"
            self._spawn([*sim, "--pty", "--pty-link", str(link)], f"monitor-{room}.log")
            return {"protocol": protocol, "transport": "serial", "address": str(link)}
        port = free_port()
        self._spawn([*sim, "--tcp", f"127.0.0.1:{port}"], f"monitor-{room}.log")
        return {"protocol": protocol, "transport": transport, "address": f"127.0.0.1:{port}"}

    def start(self) -> None:
        self.broker.start()
        print(
            f"Mosquitto on 127.0.0.1:{self.broker.port}; logs and state in {self.base}", flush=True
        )
        for index, room in enumerate(self.rooms):
            state = self.base / f"room-{room}"
            state.mkdir(exist_ok=True)
            monitor = self._monitor_for(index, room, state)
            print(
                f"room {room}: simulated {monitor['protocol']} monitor over "
                f"{monitor['transport']} {monitor['address']}",
                flush=True,
            )
            cfg = state / "room.toml"
            cfg.write_text(
                room_config_text(SITE, room, state, self.broker.port, monitor, self.args.speed)
            )
            self._spawn(
                [sys.executable, "-m", "controller.cli", "room", "run", "--config", str(cfg)],
                f"room-{room}.log",
            )

    def run_script(self, view: ClinicView, on_note: Callable[[str], None]) -> None:
        # Commands sent before a room has subscribed would be lost: wait for every room.
        deadline = time.monotonic() + 60
        while not view.all_online():
            if time.monotonic() > deadline:
                on_note("not every room came online within 60 s; starting the script anyway")
                break
            if self.stop_event.wait(0.1):
                return
        on_note("all rooms online: the scripted session starts")
        scale = 1.0 / self.args.speed
        t0 = time.monotonic()
        for step in scripted_session():
            if step.room_index >= len(self.rooms):
                continue
            if self.stop_event.wait(max(0.0, t0 + step.at * scale - time.monotonic())):
                return
            room = self.rooms[step.room_index]
            kind, _, arg = step.what.partition(":")
            if kind == "phase":
                view.publish(topics.cmd(SITE, room, "phase"), {"phase": arg, "by": STAFF})
            elif kind in ("press", "release"):
                view.publish(topics.sim_button(SITE, room), {"button": arg, "action": kind})
            elif kind == "claim":
                with view.lock:
                    call_id = view.rooms[room].call.get("call_id")
                if call_id:
                    view.publish(topics.cmd(SITE, room, "claim"), {"call_id": call_id, "by": STAFF})
            if step.note:
                on_note(f"room {room}: {step.note}")

    def stop(self) -> None:
        self.stop_event.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.broker.stop()
        if self.own_base and not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    demo = Demo(args)
    previous = signal.signal(signal.SIGTERM, lambda *a: demo.stop_event.set())
    view: ClinicView | None = None
    started = time.monotonic()
    try:
        demo.start()
        view = ClinicView(demo.broker.port, demo.rooms)
        view.start()
        notes: list[str] = []
        script = threading.Thread(target=demo.run_script, args=(view, notes.append), daemon=True)
        script.start()
        deadline = started + args.duration if args.duration else None
        live = sys.stdout.isatty() and not args.no_table
        if live:
            from rich.live import Live

            with Live(view.table(0), refresh_per_second=4) as screen:
                while not demo.stop_event.wait(0.25):
                    screen.update(view.table(time.monotonic() - started))
                    if deadline and time.monotonic() >= deadline:
                        break
        else:
            shown = 0
            while not demo.stop_event.wait(1.0):
                elapsed = time.monotonic() - started
                for note in notes[shown:]:
                    print(f"  - {note}", flush=True)
                shown = len(notes)
                if int(elapsed) % 5 == 0:
                    print(view.progress_line(elapsed), flush=True)
                if deadline and time.monotonic() >= deadline:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if view is not None:
            summary = {
                "rooms": len(demo.rooms),
                **view.counts,
                "seconds": round(time.monotonic() - started, 1),
                "state_dir": str(demo.base) if (not demo.own_base or args.keep) else None,
            }
            view.stop()
            print("summary: " + json.dumps(summary), flush=True)
            if args.summary:
                Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")
        demo.stop()
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("demo", help="run a whole simulated clinic on this machine")
    p.add_argument("--duration", type=float, default=0, help="stop by itself after SECONDS")
    p.add_argument("--rooms", type=int, default=3, help="number of simulated rooms (default 3)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="script time compression (2 = twice as fast)"
    )
    p.add_argument("--state-dir", help="keep logs and state here instead of a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--summary", metavar="FILE", help="also write the end summary as JSON")
    p.add_argument(
        "--no-table", action="store_true", help="progress lines instead of the live table"
    )
    p.set_defaults(func=_run)
