"""The board's Starlette application: who is asking (login sessions), pages, live stream,
actions.

How this works: `Board` owns the live state (SiteState fed by BoardFeed on paho's thread),
the hub (fan-out to event streams on the server's loop), the board database (accounts,
sessions, audit) and the path of the logger's database (history, read-only). `Board.app` is
the ASGI app; `pages.py` and `api.py` hold the handlers and get the Board from
`request.app.state.board`.

Authentication: a login form sets an HttpOnly, SameSite=Strict cookie holding a random
session token (see `users.py`). Every state-changing request (POST) must carry the session's
CSRF token (header `X-CSRF-Token` or form field `csrf`) and, when the browser sends an
`Origin`, it must be this server. `--no-auth` (loopback only, for the demo) acts as the
nurse `board`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.mqtt import BrokerEndpoint

from .feed import BoardFeed
from .hub import Hub
from .live import SiteState
from .security import LoginLimiter, same_token
from .users import BoardDB, Session

log = logging.getLogger("roomctl.board")
HERE = Path(__file__).parent
SESSION_COOKIE = "roomctl_session"
LOGIN_COOKIE = "roomctl_login"
NO_AUTH_USER = "board"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@dataclass
class BoardConfig:
    site: str
    endpoint: BrokerEndpoint
    logger_db: Path | None
    board_db: Path
    no_auth: bool = False
    session_hours: float = 12.0
    secure_cookies: bool = False
    chromium: str = "/usr/bin/chromium"
    host: str = "127.0.0.1"  # where it is bound (with --no-auth, the only Host names allowed)


class SecurityHeaders:
    """Pure ASGI middleware: CSP and friends on every response (streaming ones too)."""

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
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Board:
    def __init__(self, config: BoardConfig, clock: Any = time.time):
        from . import api, pages

        self.config = config
        self.site = config.site
        self.clock = clock
        self.state = SiteState(config.site)
        self.hub = Hub()
        self.feed = BoardFeed(config.endpoint, self.state, listener=self.hub.notify_threadsafe)
        self.users = BoardDB(config.board_db)
        self.limiter = LoginLimiter()
        self.no_auth_csrf = secrets.token_urlsafe(32)
        self.stopping = asyncio.Event()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates = Jinja2Templates(env=env)
        routes = [
            *pages.routes(),
            *api.routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.app = Starlette(routes=routes, lifespan=self._lifespan)
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
        log.info("board for site %s: broker %s", self.site, self.config.endpoint.url)
        try:
            yield
        finally:
            self.stopping.set()
            self.feed.stop()
            self.users.close()

    # -- who is asking ------------------------------------------------------------------
    def session(self, request: Request) -> Session | None:
        if self.config.no_auth:
            return Session(NO_AUTH_USER, "nurse", self.no_auth_csrf, math.inf)
        return self.users.session(request.cookies.get(SESSION_COOKIE))

    def origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:  # same-origin GET-like navigations and non-browser clients
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    def csrf_ok(self, request: Request, sess: Session, form_token: str | None = None) -> bool:
        token = request.headers.get("x-csrf-token") or form_token
        return self.origin_ok(request) and same_token(token, sess.csrf)

    def render(self, request: Request, name: str, sess: Session | None, **ctx: Any) -> Response:
        base = {
            "site": self.site,
            "user": sess.name if sess else None,
            "role": sess.role if sess else None,
            "can_act": bool(sess and sess.can_act),
            "csrf": sess.csrf if sess else "",
            "no_auth": self.config.no_auth,
        }
        return self.templates.TemplateResponse(request, name, {**base, **ctx})

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def set_session_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self.config.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=self.config.secure_cookies,
            path="/",
        )

    @staticmethod
    def json_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error": message}, status_code=status)


def build_app(config: BoardConfig) -> Board:
    return Board(config)
