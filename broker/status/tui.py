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
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from broker.board.cert_watch import CertWatch
from broker.board.feed import BoardFeed
from broker.board.live import SiteState
from broker.board.queue import new_calls, site_queue
from contract.mqtt import BrokerEndpoint

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


def render_table(
    site: str,
    views: list[dict[str, Any]],
    now: float,
    link: str,
    cert_warnings: list[str] | None = None,
) -> Table:
    caption = Text()
    for line in cert_warnings or []:  # under the table, as plain text
        caption.append_text(plain(f"! {line}\n", "bold"))
    table = Table(
        title=f"roomctl · site {site} · {link}",
        caption=caption if cert_warnings else None,
        caption_justify="left",
        expand=True,
        show_lines=False,
    )
    for col in ("room", "status", "phase", "call", "SpO2", "HR", "NIBP", "RR", "alerts", "trouble"):
        table.add_column(col, no_wrap=col in ("room", "SpO2", "HR", "NIBP", "RR"))
    if not views:
        table.add_row("-", "no room has reported yet", *[""] * 8)
    for v in views:
        status = (
            Text("OFFLINE", style="bold white on grey37")
            if v["offline"]
            else plain(v["availability"] or "?")
        )
        phase = f"{v['phase'] or '-'} {_since(v['phase_since'], now)}"
        if v["overrun"]:
            phase += " OVERRUN"
        calls = v.get("calls") or ([v["call"]] if v["call"] else [])
        call = Text("-") if not calls else Text()
        for n, c in enumerate(calls):
            kind = c.get("type")
            name = kind if kind not in (None, "normal") else (c["priority"] or "normal")
            label = f"{MARK[c['level']]} {name} {c['status']}"
            if c.get("tier", 1) > 1:
                label += f" tier {c['tier']}"
            label += f" {_since(c['placed_at'], now)}"
            if c["claimed_by"]:
                label += f" claimed by {c['claimed_by']}"
            if n:
                call.append("\n")
            call.append_text(plain(label, style=STYLE[c["level"]]))
        modes = [
            text
            for key, text in (("presence", "staff present"), ("cleaning", "cleaning"))
            if v.get(key)
        ]
        if v.get("cord_out"):
            modes.append("CORD OUT")
        if modes:
            status.append_text(plain(" · " + " · ".join(modes)))
        vit = v["vitals"] or {}
        dim = "dim strike" if v["vitals_stale"] else ""
        cells = [
            Text(_num(vit.get("spo2")), style=dim),
            Text(_num(vit.get("hr")), style=dim),
            Text(
                f"{_num(vit.get('nibp_sys'))}/{_num(vit.get('nibp_dia'))}"
                if vit.get("nibp_sys") is not None
                else "-",
                style=dim,
            ),
            Text(_num(vit.get("rr")) + (" stale" if v["vitals_stale"] and vit else ""), style=dim),
        ]
        alerts = Text()
        for a in v["alerts"]:
            alerts.append_text(
                plain(f"{MARK.get(a['severity'], '!')} {a['name']} ", STYLE.get(a["severity"], ""))
            )
        table.add_row(
            plain(v["room"]), status, plain(phase), call, *cells, alerts,
            plain(", ".join(v["trouble"])),
        )  # fmt: skip
    return table


def _link(feed: BoardFeed, state: SiteState) -> str:
    text = "live" if feed.connected.is_set() else "BROKER LINK DOWN"
    if state.logger_status == "offline":
        text += " · logger offline"
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
                render_table(site, state.views(now), now, _link(feed, state), certs.current(now))
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
                table = render_table(site, views, now, _link(feed, state), certs.current(now))
                live.update(table, refresh=True)
                if ringer is not None:
                    ringer.update(views)
                changed.wait(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        feed.stop()
    return 0
