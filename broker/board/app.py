"""The board's Starlette application: the handlers' routes around the shared context.

How this works: `Board` is a `BoardContext` (`context.py`: live state fed by BoardFeed on
paho's thread, the hub fanning out to event streams on the server's loop, the board database
of accounts, sessions and audit, and the logger's store, read-only) plus `Board.app`, the
ASGI app. The handlers (`pages.py`, `api.py`) get the context from `request.app.state.board`
through one guard (`guard.py`); this module imports them, they never import it.

Authentication: a login form sets an HttpOnly, SameSite=Strict cookie holding a random
session token (see `users.py`). Every state-changing request (POST) must carry the session's
CSRF token (header `X-CSRF-Token` or form field `csrf`) and, when the browser sends an
`Origin`, it must be this server. `--no-auth` (loopback only, for the demo) acts as the
nurse `board`.

Limits (one bad client cannot take the board down): bodies are bounded before they are read
(`limits.BodyLimit`), PDF renders queue (`limits.RenderQueue`), the login limiter counts an
attempt before its hash (`security.py`), and the server closes slow requests and bounds
connections (`server.py`). Live streams end at logout and, through `_watch_sessions`, when a
session expires or its account is removed or disabled.

Transport: in production uvicorn serves this app over TLS (`--tls-cert/--tls-key`, a server
certificate from the clinic CA), every HTTPS response carries HSTS, and the plain-HTTP port
only redirects (`redirect.py`). Plain HTTP serves the board only on loopback (demo, tests) or
behind an HTTPS proxy with `--insecure-http` (see `cli.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.ops.sdnotify import Notifier

from . import api, pages, report_pages
from .context import HERE, BoardConfig, BoardContext
from .limits import BodyLimit

__all__ = ["Board", "BoardConfig", "build_app"]

log = logging.getLogger("roomctl.board")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


HSTS = b"max-age=31536000"
SESSION_CHECK_S = 1.0


class SecurityHeaders:
    """Pure ASGI middleware: CSP and friends on every response (streaming ones too), and
    `Strict-Transport-Security` on every response sent over HTTPS."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Board(BoardContext):
    """The board: its shared context plus the Starlette application (`self.app`)."""

    def __init__(self, config: BoardConfig, clock: Any = time.time):
        super().__init__(config, clock)
        routes = [
            *pages.routes(),
            *api.routes(),
            *report_pages.routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
        self.app.add_middleware(BodyLimit)
        self.app.add_middleware(SecurityHeaders)
        if config.no_auth:
            # no login: refuse any Host but loopback names, so a web page that rebinds its own
            # name to 127.0.0.1 (DNS rebinding) cannot read the board or take its CSRF token
            self.app.add_middleware(
                TrustedHostMiddleware,
                allowed_hosts=[*LOOPBACK_NAMES, config.host],
                www_redirect=False,
            )
        self.app.state.board = self

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.hub.bind(asyncio.get_running_loop())
        self.feed.start()
        watcher = asyncio.create_task(self._watch_sessions())
        systemd = Notifier()
        watchdog = asyncio.create_task(self._watchdog(systemd))
        log.info("board for site %s: broker %s", self.site, self.config.endpoint.url)
        systemd.notify("READY=1\nSTATUS=serving")
        try:
            yield
        finally:
            systemd.notify("STOPPING=1")
            self.stopping.set()
            watcher.cancel()
            watchdog.cancel()
            self.feed.stop()
            self.close()
            systemd.close()

    async def _watchdog(self, systemd: Notifier) -> None:
        """Under systemd's `WatchdogSec`: `WATCHDOG=1` every half interval while the event loop
        runs (this task is scheduled on it: a stuck loop stops the pings) and the board's own
        database takes a write. A broker link down does not stop the pings: the board then
        shows its banner, and a restart would not bring the broker back."""
        interval = systemd.watchdog_interval
        if interval is None:
            return
        while not self.stopping.is_set():
            problem = await asyncio.to_thread(self.users.writable)
            if problem is None:
                systemd.notify("WATCHDOG=1")
            else:
                log.error("watchdog withheld: board database not writable: %s", problem)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval / 2)

    async def _watch_sessions(self) -> None:
        """Every `SESSION_CHECK_S`, end the live streams whose session no longer lets anyone
        in (expired; account removed or disabled, also by `roomctl board user` in another
        process). One query per check, only while streams are open."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), SESSION_CHECK_S)
            if self.hub.session_keys():
                try:
                    live = self.users.live_session_keys()
                except sqlite3.Error as exc:  # a busy or broken file: keep the streams, retry
                    log.warning("session check failed: %s", exc)
                    continue
                ended = self.hub.close_all_but(live)
                if ended:
                    log.info("closed %d live stream(s) of ended sessions", ended)


def build_app(config: BoardConfig) -> Board:
    return Board(config)
