"""What every board handler works with: `BoardContext` (live state, hub, feed, accounts, the
logger's store, templates) and the helpers that answer a request with it.

Handlers reach it as `request.app.state.board` (through `guard.py`); they never import
`app.py`, which builds the Starlette application from the handlers' routes. Shared names
(cookies, the `--no-auth` user) live here so that no handler needs `app.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from broker.logger.store import LogStore, open_store
from contract import sitetime
from contract.mqtt import BrokerEndpoint

from .assignments import Assignments
from .call_stats import DEFAULT_SHIFTS, Shift
from .cert_watch import CertWatch
from .feed import BoardFeed
from .hub import Hub
from .limits import RenderQueue
from .live import SiteState
from .metrics import BoardMetrics
from .security import LoginLimiter, same_token
from .users import KIOSK_SESSION_S, BoardDB, Session

HERE = Path(__file__).parent
SESSION_COOKIE = "roomctl_session"
LOGIN_COOKIE = "roomctl_login"
NO_AUTH_USER = "board"


@dataclass
class BoardConfig:
    site: str
    endpoint: BrokerEndpoint
    logger_db: Path | str | None  # a SQLite file or a postgresql:// URL
    board_db: Path
    no_auth: bool = False
    session_hours: float = 12.0
    secure_cookies: bool = True  # plain loopback HTTP (demo, tests) turns it off explicitly
    chromium: str = "/usr/bin/chromium"
    host: str = "127.0.0.1"  # where it is bound (with --no-auth, the only Host names allowed)
    paper: str = "A4"  # the printed report's paper: "A4" or "Letter" (the site's setting)
    watch_certs: tuple[Path, ...] = ()  # certificate files/folders to warn about (and its own)
    # The site's time zone: every time a person reads is local, named (contract/sitetime.py)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(sitetime.DEFAULT_ZONE))
    shifts: tuple[Shift, ...] = DEFAULT_SHIFTS  # the site's shifts (reports)


def staff_name(cert: Path | None) -> str:
    """The staff name in the board's client certificate (CN `staff-<name>`): what the broker's
    ACL lets it write commands under. Without a certificate (the loopback development
    listener, which has no ACL) it is `board`."""
    if cert is None:
        return NO_AUTH_USER
    from cryptography import x509

    try:
        subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
    except (OSError, ValueError) as exc:
        raise ValueError(f"--cert {cert}: cannot read the certificate ({exc})") from exc
    cns = subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    kind, _, name = cn.partition("-")
    if kind != "staff" or not name:
        raise ValueError(
            f"--cert {cert}: CN {cn!r} is not a staff identity (staff-<name>): the board "
            "sends commands under its staff name"
        )
    return name


class BoardContext:
    """Everything the handlers share. `app.Board` adds the ASGI application around it."""

    def __init__(self, config: BoardConfig, clock: Any = time.time):
        self.config = config
        self.site = config.site
        self.clock = clock
        self.state = SiteState(config.site)
        self.hub = Hub()
        self.feed = BoardFeed(
            config.endpoint,
            self.state,
            listener=self.hub.notify_threadsafe,
            sender=staff_name(config.endpoint.cert),
        )
        self.metrics = BoardMetrics(
            config.site,
            self.state,
            lambda: self.hub.subscribers,
            self.feed.connected.is_set,
            [config.endpoint.cert],
        )
        self.users = BoardDB(config.board_db)
        self.assignments = Assignments(self.users)
        # the retained copy goes out on every (re)connect, so the notifier always has it
        self.feed.assignments = self.assignments.rooms
        self.history: LogStore | None = (
            open_store(config.logger_db, readonly=True) if config.logger_db else None
        )
        self.limiter = LoginLimiter()
        self.renders = RenderQueue()
        endpoint = config.endpoint
        self.certs = CertWatch([endpoint.ca, endpoint.cert, *config.watch_certs], self.state)
        self.no_auth_csrf = secrets.token_urlsafe(32)
        self.stopping = asyncio.Event()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["hm"] = lambda ts: sitetime.hm(ts, config.tz)
        env.filters["hms"] = lambda ts: sitetime.hms(ts, config.tz)
        env.filters["stamp"] = lambda ts: sitetime.stamp(ts, config.tz)
        self.templates = Jinja2Templates(env=env)

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

    # -- answers ------------------------------------------------------------------------
    def render(self, request: Request, name: str, sess: Session | None, **ctx: Any) -> Response:
        base = {
            "site": self.site,
            "user": sess.name if sess else None,
            "role": sess.role if sess else None,
            "can_act": bool(sess and sess.can_act),
            "expires_ms": int(sess.expires_at * 1000) if sess and sess.expires_at < 1e12 else 0,
            "kiosk": bool(sess and sess.is_kiosk),
            "csrf": sess.csrf if sess else "",
            "no_auth": self.config.no_auth,
            "cert_warnings": self.certs.current() if sess else [],
            **self.zone_context(),
        }
        return self.templates.TemplateResponse(request, name, {**base, **ctx})

    def zone_context(self) -> dict[str, Any]:
        """What every page gets of the site's clock: the zone's name and abbreviations (the
        page's script formats times in it, never in the browser's zone)."""
        return {
            "site_tz": self.config.tz.key,
            "site_tz_abbrevs": sitetime.abbreviations(self.config.tz),
        }

    def login_redirect(self, request: Request) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def session_lifetime_s(self, role: str) -> float:
        """How long a login lasts: a kiosk's (a wall display) for days, anyone else's for
        `session_hours` (renewed in place with the password, `session_api.py`)."""
        return float(KIOSK_SESSION_S) if role == "kiosk" else self.config.session_hours * 3600

    def set_session_cookie(self, response: Response, token: str, lifetime_s: float = 0) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(lifetime_s or self.config.session_hours * 3600),
            httponly=True,
            samesite="strict",
            secure=self.config.secure_cookies,
            path="/",
        )

    @staticmethod
    def json_error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error": message}, status_code=status)

    @classmethod
    async def json_body(cls, request: Request, max_body: int) -> Any:
        """A small JSON body (an empty one is `{}`), or the refusal as a `Response` (413, or
        400 when it is not JSON)."""
        raw = await request.body()
        if len(raw) > max_body:
            return cls.json_error(413, "body too large")
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return cls.json_error(400, "body must be JSON")

    @classmethod
    async def json_object(cls, request: Request, max_body: int) -> dict[str, Any] | Response:
        """An action's small JSON object body, or the refusal (413, or 400 saying why)."""
        body = await cls.json_body(request, max_body)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return cls.json_error(400, "body must be a JSON object")
        return body

    def close(self) -> None:
        self.users.close()
        if self.history is not None:
            self.history.close()
