"""`roomctl status`: the board's overview in the terminal (rich), for staff and technicians
without a browser. Same live state as the web board (`broker.board.live.SiteState` fed by
`BoardFeed`); `--once` gathers the retained state, prints one table and exits.

Certificates that expire within 30 days (its own `--ca/--cert`, every `--watch-cert`, and
each room's `cert_not_after` from its health) are listed under the table
(`broker.board.cert_watch`).

Like the web board, nothing relies on colour alone: levels carry `!!!`/`!!`/`!` and a word,
offline rooms say OFFLINE, stale vitals say so.

Text a room supplies (who claimed, alert names, its status text) is shown as plain text:
never parsed as rich markup (`[/]` would crash the view) and with control characters (a
terminal escape sequence) replaced, so a room cannot repaint or retitle the terminal.

Live, it rings the terminal bell (BEL) once for every pass that brings a new call (any room,
any type: `queue.new_calls`), unless `--no-bell`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from broker.board.cert_watch import CertWatch
from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.board.queue import new_calls, site_queue
from contract import sitetime
from contract.mqtt import BrokerEndpoint

UTC_ZONE = ZoneInfo(sitetime.DEFAULT_ZONE)

MARK = {"high": "!!!", "medium": "!!", "low": "!"}
# C0 and C1 control characters and DEL (ESC starts a terminal escape sequence)
_CONTROL = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], "\ufffd")


def plain(value: object, style: str = "") -> Text:
    """Room-supplied text as it is: no markup, no control characters."""
    return Text(str(value).translate(_CONTROL), style=style)


STYLE = {"high": "bold white on red", "medium": "bold black on yellow", "low": "bold black on cyan"}
QUIET_S = 0.3  # --once: retained messages have stopped arriving for this long


def _since(iso: str | None, now: float) -> str:
    if not iso:
        return "-"
    secs = max(0, int(now - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.0f}"


LEVEL_RANK = {"high": 0, "medium": 1, "low": 2}
PHASE_SHORT = {
    "idle": "idle", "pre_check": "pre-check", "infusion": "infusion", "recovery": "recovery",
    "discharge_ready": "discharge",
}  # fmt: skip


def _call_label(c: dict[str, Any], now: float) -> str:
    kind = c.get("type")
    name = kind if kind not in (None, "normal") else (c["priority"] or "normal")
    if kind == "test":
        name = "TEST call"
    label = f"{MARK[c['level']]} {name} {c['status']}"
    if c.get("tier", 1) > 1:
        label += f" t{c['tier']}"
    label += f" {_since(c['placed_at'], now)}"
    if c["claimed_by"]:
        label += f" claimed by {c['claimed_by']}"
    return label


def order(views: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Calls first (most urgent level, then the longest waiting), then rooms with an alert,
    then offline rooms, then the rest by room."""

    def key(v: dict[str, Any]) -> tuple[Any, ...]:
        calls = v.get("calls") or ([v["call"]] if v["call"] else [])
        if calls:
            top = min(calls, key=lambda c: LEVEL_RANK.get(c["level"], 9))
            placed = top.get("placed_at") or ""
            return (0, LEVEL_RANK.get(top["level"], 9), placed, v["room"])
        if v["alerts"]:
            worst = min(LEVEL_RANK.get(a["severity"], 9) for a in v["alerts"])
            return (1, worst, "", v["room"])
        return (2 if v["offline"] else 3, 0, "", v["room"])

    return sorted(views, key=key)


def render_table(
    site: str,
    views: list[dict[str, Any]],
    now: float,
    link: str,
    cert_warnings: list[str] | None = None,
    tz: ZoneInfo = UTC_ZONE,
) -> Table:
    """One line per room, calls first; fits 80 columns (what does not fit is cut with an
    ellipsis, never wrapped onto a second line)."""
    caption = Text()
    for line in cert_warnings or []:  # under the table, as plain text
        caption.append_text(plain(f"! {line}\n", "bold"))
    clock = sitetime.hm(datetime.fromtimestamp(now, UTC), tz)  # the site's clock now
    table = Table(
        title=f"roomctl · site {site} · {link} · {clock}",
        caption=caption if cert_warnings else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0),
        expand=True,
    )
    table.add_column("room", no_wrap=True, overflow="ellipsis", max_width=6)
    table.add_column("call", no_wrap=True, overflow="ellipsis", ratio=3, min_width=14)
    table.add_column("phase", no_wrap=True, overflow="ellipsis", width=16)
    table.add_column("SpO2", no_wrap=True, justify="right", width=4)
    table.add_column("HR", no_wrap=True, justify="right", width=3)
    table.add_column("BP", no_wrap=True, justify="right", width=7)
    table.add_column("notes", no_wrap=True, overflow="ellipsis", ratio=2, min_width=8)
    if not views:
        table.add_row("-", "no room has reported yet", *[""] * 5)
    for v in order(views, now):
        calls = v.get("calls") or ([v["call"]] if v["call"] else [])
        if calls:
            top = calls[0]
            call = plain(_call_label(top, now), style=STYLE[top["level"]])
            if len(calls) > 1:
                call.append(f" +{len(calls) - 1}")
        else:
            call = Text("-")
        name = PHASE_SHORT.get(v["phase"] or "", v["phase"] or "-")
        phase = f"{name} {_since(v['phase_since'], now)}"
        if v["overrun"]:
            phase += " OVER"
        vit = v["vitals"] or {}
        dim = "dim strike" if v["vitals_stale"] else ""
        bp = (
            f"{_num(vit.get('nibp_sys'))}/{_num(vit.get('nibp_dia'))}"
            if vit.get("nibp_sys") is not None
            else "-"
        )
        notes = Text()
        if v["offline"]:
            notes.append("OFFLINE ", style="bold white on grey37")
        elif v["availability"] != "online":
            notes.append_text(plain(f"{v['availability'] or '?'} "))
        for a in v["alerts"]:
            notes.append_text(
                plain(f"{MARK.get(a['severity'], '!')} {a['name']} ", STYLE.get(a["severity"], ""))
            )
        extra = [
            text
            for key, text in (("presence", "staff present"), ("cleaning", "cleaning"))
            if v.get(key)
        ]
        if v.get("cord_out"):
            extra.append("CORD OUT")
        if v["vitals_stale"] and vit:
            extra.append("vitals stale")
        extra += v["trouble"]
        notes.append_text(plain(", ".join(extra)))
        table.add_row(
            plain(v["room"]), call, plain(phase),
            Text(_num(vit.get("spo2")), style=dim), Text(_num(vit.get("hr")), style=dim),
            Text(bp, style=dim), notes,
        )  # fmt: skip
    return table


def _ago(when: datetime | None, now: float, tz: ZoneInfo) -> str:
    """`2026-11-30 23:08:18 EST (1:05 ago)`: on the site's clock."""
    if when is None:
        return "-"
    return f"{sitetime.stamp(when, tz)} ({_since(when.isoformat(), now)} ago)"


def render_room(
    room: str, view: dict[str, Any] | None, health: Any, now: float, tz: ZoneInfo = UTC_ZONE
) -> Table:
    """`roomctl status --room N`: what the room publishes about itself, key by key."""
    table = Table(title=f"room {room}", box=box.SIMPLE, show_header=False, pad_edge=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    if view is None:
        table.add_row("room", "has not reported (check its name, its certificate and the ACL)")
        return table
    rows: list[tuple[str, str]] = [
        ("availability", "OFFLINE" if view["offline"] else str(view["availability"] or "?")),
        ("phase", f"{view['phase'] or '-'} for {_since(view['phase_since'], now)}"
                  + (" (overrun)" if view["overrun"] else "")),
        ("session", str(view["session_id"] or "-")),
    ]  # fmt: skip
    calls = view.get("calls") or ([view["call"]] if view["call"] else [])
    rows += [("call", _call_label(c, now)) for c in calls] or [("call", "none")]
    for key, text in (("presence", "staff present"), ("cleaning", "cleaning mode")):
        if view.get(key):
            rows.append((key, f"{text} since {_since(view[key]['since'], now)}"))
    if view.get("cord_out"):
        rows.append(("cord", "OUT: the call cord or pendant is unplugged"))
    rows += [("alert", f"{MARK.get(a['severity'], '!')} {a['name']} {a['value']}"
              f" (limit {a['threshold']})") for a in view["alerts"]]  # fmt: skip
    vit = view["vitals"] or {}
    shown = ", ".join(f"{k} {_num(vit.get(k))}" for k in ("spo2", "hr", "rr") if k in vit)
    rows.append(("last reading", (shown or "none") + (" (stale)" if view["vitals_stale"] else "")))
    if health is not None:
        m, o = health.monitor, health.outbox
        rows += [
            ("monitor", f"{m.status.value} · {m.protocol or '-'} over {m.transport or '-'}"),
            ("monitor frames", f"{m.frames_accepted} accepted, {m.frames_rejected} rejected"),
            ("monitor last", _ago(m.last_reading_at, now, tz)),
            ("outbox", f"{o.depth} waiting (oldest {o.oldest_age_s or 0:.0f} s) of {o.cap}; "
                       f"{o.vitals_thinned} vitals thinned, {o.refused} refused"),
            ("clock", "synchronised" if health.clock_synced else "NOT synchronised"),
            ("buttons / lights", f"{health.buttons.value} / {health.lights.value}"),
            ("status", f"{health.status_code} {health.status_text}"),
            ("uptime", _since(datetime.fromtimestamp(now - health.uptime_s).isoformat(), now)),
            ("version", health.version),
            ("certificate", "not reported" if health.cert_not_after is None
             else _ago(health.cert_not_after, now, tz).replace(" ago)", ")").replace("(", "(in ")
             if health.cert_not_after.timestamp() > now
             else f"EXPIRED {sitetime.stamp(health.cert_not_after, tz)}"),
        ]  # fmt: skip
    else:
        rows.append(("health", "not reported yet"))
    for what, value in rows:
        table.add_row(what, plain(value))
    return table


def _render(
    state: SiteState,
    site: str,
    room: str | None,
    now: float,
    link: str,
    warnings: list[str],
    tz: ZoneInfo,
) -> Table:
    views = state.views(now)
    if room is None:
        return render_table(site, views, now, link, warnings, tz)
    view = next((v for v in views if v["room"] == room), None)
    return render_room(room, view, state.health(room), now, tz)


def _link(feed: BoardFeed, state: SiteState) -> str:
    text = "live" if feed.connected.is_set() else "BROKER LINK DOWN"
    for name, status in state.logger_statuses().items():
        if status == "offline":
            text += f" · logger {name} offline" if name else " · logger offline"
    return text


def gather_once(feed: BoardFeed, wait_s: float, clock: Any = time.monotonic) -> None:
    """Wait for the subscription, then until retained messages stop coming (bounded)."""
    changed = threading.Event()
    feed.listener = lambda room: changed.set()
    deadline = clock() + wait_s
    if not feed.wait_subscribed(wait_s):
        return
    while clock() < deadline:
        changed.clear()
        if not changed.wait(min(QUIET_S, max(0.0, deadline - clock()))):
            return


class Bell:
    """Rings (BEL on the terminal) when the queue holds a call it has not seen before."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.seen: set[str] = set()
        self.rung = 0

    def update(self, views: list[dict[str, Any]]) -> bool:
        items = site_queue(views)
        fresh = new_calls(self.seen, items)
        self.seen = {i["key"] for i in items if i["kind"] == "call"}
        if not fresh:
            return False
        self.out.write("\a")
        self.out.flush()
        self.rung += 1
        return True


def run_status(
    endpoint: BrokerEndpoint,
    site: str,
    once: bool = False,
    wait_s: float = 3.0,
    watch_certs: tuple[Path, ...] = (),
    bell: bool = True,
    room: str | None = None,
    tz: ZoneInfo = UTC_ZONE,
) -> int:
    console = Console()
    state = SiteState(site)
    certs = CertWatch([endpoint.ca, endpoint.cert, *watch_certs], state)
    feed = BoardFeed(endpoint, state)
    feed.start()
    try:
        if once:
            gather_once(feed, wait_s)
            now = time.time()
            console.print(
                _render(state, site, room, now, _link(feed, state), certs.current(now), tz)
            )
            return 0 if feed.connected.is_set() else 1
        changed = threading.Event()
        feed.listener = lambda room: changed.set()
        ringer = Bell(console.file) if bell else None
        with Live(console=console, auto_refresh=False, screen=False) as live:
            for _ in iter(int, 1):  # until Ctrl-C; each pass waits on a change or 1 s
                changed.clear()
                now = time.time()
                views = state.views(now)
                table = _render(state, site, room, now, _link(feed, state), certs.current(now), tz)
                live.update(table, refresh=True)
                if ringer is not None:
                    ringer.update(views)
                changed.wait(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        feed.stop()
    return 0
