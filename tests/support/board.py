"""Helpers for the board tests: the board served by uvicorn on a loopback port in a thread,
headless Debian Chromium through Playwright, and contract-valid room messages.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from broker.board.app import Board, BoardConfig
from broker.board.security import ServeLimits
from broker.board.server import serve_config
from broker.mosquitto.run import free_port
from contract import messages, sitetime, timefmt, topics
from contract.mqtt import BrokerEndpoint
from tests.support.mqtt import Recorder, wait_until

SITE = "test"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORDS = {
    "alice": "alice-password-1",
    "victor": "victor-password-1",
    "rita": "rita-password-1",
    "wall": "wall-display-password-1",
}


class BoardServer:
    """The real board app under uvicorn in a thread, on 127.0.0.1:<free port>."""

    def __init__(
        self,
        broker_url: str,
        tmp: Path,
        no_auth: bool = False,
        logger_db: Path | None = None,
        limits: ServeLimits | None = None,
        timezone: str = "UTC",
    ):
        self.port = free_port()
        self.config = BoardConfig(
            site=SITE,
            endpoint=BrokerEndpoint.from_url(broker_url),
            logger_db=logger_db,
            board_db=tmp / "board.sqlite",
            no_auth=no_auth,
            secure_cookies=False,  # plain HTTP on loopback, as `roomctl board` sets it
            tz=sitetime.site_zone(timezone),
        )
        self.board = Board(self.config)
        self.board.users.add_user("alice", "nurse", PASSWORDS["alice"])
        self.board.users.add_user("victor", "viewer", PASSWORDS["victor"])
        self.board.users.add_user("rita", "charge", PASSWORDS["rita"])
        self.board.users.add_user("wall", "kiosk", PASSWORDS["wall"])
        self.server = uvicorn.Server(
            serve_config(  # the board's own server limits, as `roomctl board` serves it
                self.board.app,
                limits,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=1,
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BoardServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 15, "board server started")
        if not self.board.feed.wait_subscribed(15):
            raise TimeoutError("board did not subscribe to the broker")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def login(page: Page, base: str, user: str) -> None:
    page.goto(base + "/")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


class FakeRoom:
    """Publishes contract-valid messages for one room with paho (seq strictly increasing)."""

    def __init__(self, rec: Recorder, room: str, site: str = SITE, start_seq: int = 1):
        self.rec, self.room, self.site = rec, room, site
        self._seq = itertools.count(start_seq)

    def env(self) -> dict[str, Any]:
        return {
            "v": 1,
            "site": self.site,
            "room": self.room,
            "epoch": "0000000000000001",
            "seq": next(self._seq),
            "ts": timefmt.format_ts(datetime.now(UTC)),
            "clock_synced": True,
        }

    def send(self, leaf: str, model: type[messages.Envelope], retain: bool, **fields: Any) -> Any:
        msg = model.model_validate({**self.env(), **fields})
        self.rec.publish(
            topics.room_topic(self.site, self.room, leaf),
            msg.model_dump_json(),
            retain=retain,
        )
        return msg

    def online(self) -> None:
        self.rec.publish(topics.availability(self.site, self.room), "online", retain=True)

    def state(self, phase: str, **fields: Any) -> Any:
        now = timefmt.format_ts(datetime.now(UTC))
        return self.send("state", messages.StateMessage, True, phase=phase, since=now, **fields)

    def call(self, status: str, **fields: Any) -> Any:
        return self.send("call", messages.CallMessage, True, status=status, **fields)

    def vitals(self, **values: Any) -> Any:
        return self.send("vitals", messages.VitalsMessage, False, protocol="test", **values)

    def health(self, **fields: Any) -> Any:
        base: dict[str, Any] = {
            "monitor": {"status": "ok"},
            "buttons": "ok",
            "lights": "ok",
            "outbox": {"depth": 0, "cap": 1000},
            "uptime_s": 10,
            "version": "test",
        }
        base.update(fields)
        return self.send("health", messages.HealthMessage, True, **base)

    def event(self, kind: str, **fields: Any) -> Any:
        return self.send("events", messages.EventMessage, False, kind=kind, **fields)


# The page's audio calls, recorded: every oscillator the board starts (its frequency, the
# page clock) and every one it stops at once (a pattern cut short). Installed before the
# board's scripts run; the board itself is unchanged.
AUDIO_PROBE = """
window.__audio = [];
(() => {
  const Ctx = window.AudioContext;
  if (!Ctx) return;
  const make = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () {
    const osc = make.call(this);
    const start = osc.start.bind(osc);
    const stop = osc.stop.bind(osc);
    osc.start = (when) => {
      window.__audio.push({ op: "start", freq: osc.frequency.value, at: Date.now() });
      return start(when);
    };
    osc.stop = (when) => {
      if (when === undefined) window.__audio.push({ op: "cut", freq: osc.frequency.value });
      return stop(when);
    };
    return osc;
  };
})();
"""


def audio_starts(page: Page) -> list[float]:
    """The frequency of every pulse the page has started, in order."""
    return list(page.evaluate("window.__audio.filter((a) => a.op === 'start').map((a) => a.freq)"))


FAVICON_PIXEL = """async () => {
  const img = new Image();
  img.src = document.getElementById("favicon").href;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 32;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(4, 16, 1, 1).data.slice(0, 3));
}"""


def favicon_colour(page: Page) -> tuple[int, int, int]:
    """The colour of the tab icon's disc (left of its number): what a nurse sees on the tab."""
    r, g, b = page.evaluate(FAVICON_PIXEL)
    return int(r), int(g), int(b)


def shift_start(page: Page) -> None:
    """The nurse's one click at the start of a shift: sound on."""
    page.get_by_role("button", name="Turn sound on for this shift").click()
