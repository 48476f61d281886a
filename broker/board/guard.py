"""One guard for every board handler: who is asking, and may they do this.

Every endpoint is a handler wrapped by one of these decorators; none checks a login itself:

- `public`  no login needed (login form, logout, health check); the handler decides.
- `page`    an HTML page: without a login session, a redirect to the login page (`?next=`).
- `read`    a JSON or event-stream endpoint: without a login session, 401 `{"error": "log in"}`.
- `act`     a staff action (POST): 401 without a session; 403 without the session's CSRF token
            (or from a foreign `Origin`); 403 (and an audit row) when the role may not act
            (`viewer`; only `nurse` acts).
- `page_for(*roles)` a page only these roles may open (reports, audit): as `page`, and 403
            (with an audit row) for any other role.
- `own_session` a POST on one's own login session, any role (logout): without a session, a
            redirect to the login page; 403 without the session's CSRF token (header, or the
            form field `csrf`) or from a foreign `Origin`, and nothing changes.

The wrapped handler gets `(request, board)` (`public`) or `(request, board, session)`, the
board being the `BoardContext` the application stored in `request.app.state.board`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from enum import Enum
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from .context import BoardContext
from .users import Session

Endpoint = Callable[[Request], Awaitable[Response]]
PublicHandler = Callable[[Request, BoardContext], Awaitable[Response]]
SessionHandler = Callable[[Request, BoardContext, Session], Awaitable[Response]]


class Access(Enum):
    PUBLIC = "public"
    PAGE = "page"
    READ = "read"
    ACT = "act"
    SESSION = "session"


# Every endpoint this module made, with its access rule (tests check that each route has one).
GUARDED: dict[Endpoint, Access] = {}


def board_of(request: Request) -> BoardContext:
    board: BoardContext = request.app.state.board
    return board


def refusal(request: Request, board: BoardContext, access: Access) -> Session | Response:
    """The session that may go on, or the answer that refuses it."""
    sess = board.session(request)
    if sess is None:
        if access is Access.PAGE:
            return board.login_redirect(request)
        return board.json_error(401, "log in")
    if access is Access.ACT:
        if not board.csrf_ok(request, sess):
            return board.json_error(403, "missing or wrong CSRF token")
        if not sess.can_act:
            board.users.audit(sess.name, "refused", request.path_params.get("room"), None, "viewer")
            return board.json_error(403, f"{sess.name} is a viewer: viewers cannot act")
    return sess


async def form_csrf(request: Request) -> str | None:
    """The `csrf` field of a form body (the body is bounded by `limits.BodyLimit`)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return None
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return fields.get("csrf", [None])[0]


def public(handler: PublicHandler) -> Endpoint:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, board_of(request))

    GUARDED[endpoint] = Access.PUBLIC
    return endpoint


def _guarded(access: Access) -> Callable[[SessionHandler], Endpoint]:
    def decorate(handler: SessionHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            board = board_of(request)
            got = refusal(request, board, access)
            if isinstance(got, Response):
                return got
            return await handler(request, board, got)

        GUARDED[endpoint] = access
        return endpoint

    return decorate


def own_session(handler: SessionHandler) -> Endpoint:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        board = board_of(request)
        sess = board.session(request)
        if sess is None:
            return RedirectResponse("/login", status_code=303)
        token = request.headers.get("x-csrf-token") or await form_csrf(request)
        if not board.csrf_ok(request, sess, token):
            return board.json_error(403, "missing or wrong CSRF token")
        return await handler(request, board, sess)

    GUARDED[endpoint] = Access.SESSION
    return endpoint


def page_for(*roles: str) -> Callable[[SessionHandler], Endpoint]:
    """A page for `roles` only (`Access.PAGE` for the login; then the role is checked)."""

    def decorate(handler: SessionHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            board = board_of(request)
            got = refusal(request, board, Access.PAGE)
            if isinstance(got, Response):
                return got
            if got.role not in roles:
                board.users.audit(got.name, "refused", None, request.url.path, got.role)
                return PlainTextResponse(
                    f"{got.name} is a {got.role}: this page is for {' and '.join(roles)} "
                    "logins",
                    status_code=403,
                )
            return await handler(request, board, got)

        GUARDED[endpoint] = Access.PAGE
        return endpoint

    return decorate


page = _guarded(Access.PAGE)
read = _guarded(Access.READ)
act = _guarded(Access.ACT)
