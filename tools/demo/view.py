"""The demo's live view of every room: a paho subscriber feeding a rich table.

Callbacks only update small dicts under a lock; the table is drawn from the main thread.
The same client sends the scripted nurse's commands and the simulated patients' presses.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from contract import topics
from contract.mqtt import BrokerEndpoint, close_client, expiry_properties, make_client
from contract.staff import DEFAULT_COMMAND_MAX_AGE_S, CallReceipt
from contract.topics import COMMANDS

WIDE_COLUMNS = (
    "room", "link", "phase", "time", "call", "SpO2", "pulse", "NIBP", "RR", "alerts",
    "health", "last event",
)  # fmt: skip
# At 80 columns: what the technician needs to act on, calls and alerts first among the cells.
NARROW_COLUMNS = ("room", "link", "phase", "call", "SpO2", "pulse", "NIBP", "alerts")
# Fixed widths (the last column of each layout takes what is left): rich does not shrink a
# no-wrap column on its own, and a row must never wrap.
COLUMN_WIDTHS = {
    "room": 4, "link": 4, "phase": 9, "time": 5, "call": 24, "SpO2": 4, "pulse": 5,
    "NIBP": 7, "RR": 3, "alerts": 16, "health": 14,
}  # fmt: skip
SHORT_PHASE = {"pre_check": "pre-check", "discharge_ready": "discharge"}


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
    monitor: str = "?"
    last_event: str = ""


class ClinicView:
    def __init__(self, endpoint: BrokerEndpoint, site: str, rooms: list[str], sender: str):
        self.site = site
        self.sender = sender  # the staff name of the endpoint's certificate (staff-<sender>)
        self.rooms = {r: RoomView(r) for r in rooms}
        self.lock = threading.Lock()
        self.counts = {"vitals": 0, "events": 0, "calls": 0, "alerts": 0}
        # The scripted board screen (issue 15): it confirms every call it sees with a receipt,
        # except in a room whose screens the script has closed.
        self.screens_closed: set[str] = set()
        self.endpoint = endpoint
        self.connected = threading.Event()
        self.client = make_client(endpoint, f"demo-view-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(topics.all_rooms_filter(self.site), qos=1)
        self.connected.set()

    def start(self) -> None:
        self.client.connect(self.endpoint.host, self.endpoint.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        close_client(self.client)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1)

    def command(self, room: str, name: str, **fields: Any) -> None:
        """A staff command as the board sends it: issued now, with the MQTT 5 expiry."""
        cmd = COMMANDS[name].model_validate({**fields, "issued_at": datetime.now(UTC)})
        self.client.publish(
            topics.cmd(self.site, room, name, self.sender),
            cmd.model_dump_json(exclude_none=True),
            qos=1,
            properties=expiry_properties(DEFAULT_COMMAND_MAX_AGE_S),
        )

    def receipt(self, room: str, call_id: str) -> None:
        body = CallReceipt(call_id=call_id, by=self.sender, via="screen", where="demo-desk",
                           issued_at=datetime.now(UTC))  # fmt: skip
        self.client.publish(
            topics.receipt(self.site, room, self.sender), body.model_dump_json(), qos=1
        )

    def screens(self, room: str, closed: bool) -> None:
        """Close (or open again) the screens for a room; opening confirms its open calls."""
        with self.lock:
            if closed:
                self.screens_closed.add(room)
                return
            self.screens_closed.discard(room)
            call = dict(self.rooms[room].call)
        for c in call.get("calls") or []:
            self.receipt(room, str(c["call_id"]))

    def all_online(self) -> bool:
        with self.lock:
            return all(v.availability == "online" for v in self.rooms.values())

    def call_of(self, room: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.rooms[room].call)

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
                view.monitor = data.get("monitor", {}).get("status", "?")
            elif parsed.leaf == "events":
                view.last_event = data["kind"]
                self.counts["events"] += 1
                if data["kind"] == "call_placed":
                    self.counts["calls"] += 1
                    if parsed.room not in self.screens_closed and data.get("call_id"):
                        self.receipt(parsed.room, str(data["call_id"]))
                elif data["kind"] == "alert_raised":
                    self.counts["alerts"] += 1

    def table(self, elapsed: float, title: str, width: int = 120) -> Any:
        """One line per room at any terminal width from 80 columns: below 120 the columns a
        technician can do without (time in phase, RR, health, last event) are left out,
        and a cell too long for its column ends in an ellipsis instead of wrapping."""
        from rich import box
        from rich.table import Table

        names = WIDE_COLUMNS if width >= 120 else NARROW_COLUMNS
        t = Table(
            title=f"{title}  ({elapsed:.0f} s)",
            caption="secondary notification and "
            "recording system, not a medical alarm or nurse-call system",
            box=box.SIMPLE_HEAD,
            padding=0,
        )
        # each column is followed by a one-space separator; the last takes the rest
        rest = width - 3 - sum(COLUMN_WIDTHS[n] + 1 for n in names[:-1])
        for name in names:
            fixed = COLUMN_WIDTHS[name] if name != names[-1] else max(8, rest)
            t.add_column(name, no_wrap=True, overflow="ellipsis", width=fixed)
        with self.lock:
            for v in self.rooms.values():
                cells = self._cells(v)
                t.add_row(*(cells[n] for n in names))
        return t

    @staticmethod
    def _cells(v: RoomView) -> dict[str, str]:
        call = v.call
        call_text = "-"
        if call.get("status") not in (None, "idle"):
            call_text = f"{call['priority']} {call['status']}"
            if call.get("claimed_by"):
                call_text += f" by {call['claimed_by']}"
            if call["priority"] == "emergency" or call["status"] == "escalated":
                call_text = f"[bold red]{call_text}[/]"
            else:
                call_text = f"[yellow]{call_text}[/]"
        vit = v.vitals
        stale = time.monotonic() - v.vitals_at > 5

        def num(name: str) -> str:
            x = vit.get(name)
            text = "-" if x is None else f"{x:.0f}"
            return f"[dim]{text}[/]" if stale else text

        nibp = f"{num('nibp_sys')}/{num('nibp_dia')}" if vit.get("nibp_sys") else "-"
        in_phase = "-"
        if v.since:
            secs = time.time() - datetime.fromisoformat(v.since.replace("Z", "+00:00")).timestamp()
            in_phase = f"{int(secs // 60)}:{int(secs % 60):02d}"
        link = "on" if v.availability == "online" else "[bold red]OFF[/]"
        alerts = f"[bold red]{', '.join(v.alerts)}[/]" if v.alerts else "-"
        return {
            "room": v.room,
            "link": link,
            "phase": SHORT_PHASE.get(v.phase, v.phase),
            "time": in_phase,
            "call": call_text,
            "SpO2": num("spo2"),
            "pulse": num("pulse_rate") if vit.get("pulse_rate") else num("heart_rate"),
            "NIBP": nibp,
            "RR": num("resp_rate"),
            "alerts": alerts,
            "health": v.health,
            "last event": v.last_event,
        }

    def progress_line(self, elapsed: float) -> str:
        with self.lock:
            parts = [
                f"{v.room}:{v.availability}/{v.phase}/{v.call.get('status', '?')}"
                for v in self.rooms.values()
            ]
            c = self.counts
            return (
                f"[{elapsed:5.0f}s] vitals={c['vitals']} events={c['events']} "
                f"calls={c['calls']} alerts={c['alerts']}  " + "  ".join(parts)
            )
