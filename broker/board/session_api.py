"""A login renewed in place (issue 15): ten minutes before a login ends the page asks for the
password again; `POST /api/session/renew {password}` checks it like a login (the same login
limiter and audit) and moves the session's end `session_hours` ahead, same token, same CSRF
token, nothing reloaded. A kiosk's login (days) is not renewed this way.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .context import SESSION_COOKIE, BoardContext
from .guard import own_session
from .users import Session

MAX_BODY = 1024


@own_session
async def renew(request: Request, board: BoardContext, sess: Session) -> Response:
    body = await board.json_body(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    # a body that is not an object is answered as a missing password
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(password, str) or not password:
        return board.json_error(400, "password: enter your password")
    client = request.client.host if request.client else "?"
    # counted before the hash, as a login is (the board's login limiter)
    wait, ticket = board.limiter.attempt(client, sess.name)
    if wait > 0:
        return board.json_error(429, f"too many failed attempts: try again in {int(wait) + 1} s")
    role = await run_in_threadpool(board.users.verify, sess.name, password)
    if role is None:
        board.users.audit(sess.name, "renew", None, None, "wrong password")
        return board.json_error(403, "wrong password: your login was not renewed")
    board.limiter.succeeded(client, sess.name, ticket)
    token = request.cookies.get(SESSION_COOKIE) or ""
    lifetime = board.session_lifetime_s(role)
    until = board.users.extend_session(token, lifetime)
    if until is None:
        return board.json_error(401, "log in")
    board.users.audit(sess.name, "renew", None, None, "ok")
    resp = JSONResponse({"ok": True, "expires_ms": int(until * 1000)})
    board.set_session_cookie(resp, token, lifetime)
    return resp


def routes() -> list[Route]:
    return [Route("/api/session/renew", renew, methods=["POST"])]
