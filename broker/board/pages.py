"""HTML pages of the board: login/logout, overview, room, session report (and PDF), call log."""

from __future__ import annotations

import logging
import secrets
import subprocess
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from broker.logger.fhir import check_patient_ref
from contract import sitetime
from contract.messages import is_ident
from contract.timefmt import format_ts

from . import history
from .call_stats import TEST_CALL_TYPE
from .call_stats import report as call_report
from .calls_view import CALL_WORD
from .context import LOGIN_COOKIE, SESSION_COOKIE, BoardContext
from .guard import own_session, page, public
from .limits import QueueFull
from .report_pages import records_between
from .session_data import report_context
from .users import Session, session_key

log = logging.getLogger("roomctl.board")
MAX_FORM_BYTES = 4096


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _login_form(
    request: Request, board: BoardContext, error: str | None, status: int = 200, wait_s: int = 0
) -> Response:
    """The login form with a fresh form token (`error`: what went wrong last time)."""
    token = secrets.token_urlsafe(24)
    resp = board.render(
        request,
        "login.html",
        None,
        next=_safe_next(request.query_params.get("next")),
        login_csrf=token,
        error=error,
        wait_s=wait_s,
    )
    resp.status_code = status
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=600,
        httponly=True,
        samesite="strict",
        secure=board.config.secure_cookies,
        path="/",
    )
    return resp


def _wants_json(request: Request) -> bool:
    """An API client (asks for JSON, not a page)."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


@public
async def login_page(request: Request, board: BoardContext) -> Response:
    if board.config.no_auth:
        return RedirectResponse("/", status_code=303)
    return _login_form(request, board, request.query_params.get("error"))


@public
async def login_submit(request: Request, board: BoardContext) -> Response:
    form = await _form(request)
    nxt = _safe_next(form.get("next"))
    name, password = form.get("username", "").strip(), form.get("password", "")

    def again(error: str, status: int = 303) -> Response:
        return RedirectResponse(f"/login?error={error}", status_code=status)

    if not board.origin_ok(request) or not secrets.compare_digest(
        form.get("login_csrf", "") or "-", request.cookies.get(LOGIN_COOKIE, "") or "+"
    ):
        return again("expired")
    client = request.client.host if request.client else "?"
    # counted before the hash: parallel guesses cannot all be checked
    wait, ticket = board.limiter.attempt(client, name)
    if wait > 0:
        log.warning("login refused (rate limit) for %r from %s", name, client)
        retry = int(wait) + 1
        refused: Response
        if _wants_json(request):
            refused = board.json_error(429, f"too many failed logins: try again in {retry} s")
        else:  # the login page again, saying why and for how long (never a bare text page)
            refused = _login_form(request, board, "rate", status=429, wait_s=retry)
        refused.headers["Retry-After"] = str(retry)
        return refused
    role = await run_in_threadpool(board.users.verify, name, password) if name else None
    if role is None:
        log.warning("failed login for %r from %s", name, client)
        return again("bad")
    board.limiter.succeeded(client, name, ticket)
    lifetime = board.session_lifetime_s(role)
    token, _ = board.users.new_session(name, lifetime)
    board.users.audit(name, "login", None, None, "ok")
    resp = RedirectResponse(nxt, status_code=303)
    board.set_session_cookie(resp, token, lifetime)
    resp.delete_cookie(LOGIN_COOKIE, path="/")
    return resp


@own_session
async def logout(request: Request, board: BoardContext, sess: Session) -> Response:
    """End this login session (the guard checked its CSRF token: a forged form from another
    site cannot log a nurse out) and close its live streams at once."""
    token = request.cookies.get(SESSION_COOKIE)
    board.users.end_session(token)
    board.hub.close_sessions({session_key(token)} if token else set())
    board.users.audit(sess.name, "logout", None, None, "ok")
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@page
async def overview(request: Request, board: BoardContext, sess: Session) -> Response:
    return board.render(request, "overview.html", sess)


def _room_param(request: Request) -> str | None:
    room = str(request.path_params["room"])
    return room if is_ident(room) else None


@page
async def room_page(request: Request, board: BoardContext, sess: Session) -> Response:
    room = _room_param(request)
    if room is None:
        return PlainTextResponse("no such room", status_code=404)
    past = await run_in_threadpool(history.sessions, board.history, board.site, room)
    return board.render(request, "room.html", sess, room=room, sessions=past)


def _patient_param(request: Request) -> str | None:
    """`?patient=Patient/123`: printed on the report as given (checked, never looked up)."""
    value = request.query_params.get("patient")
    return check_patient_ref(value) if value else None


async def _report_ctx(request: Request, board: BoardContext, room: str) -> dict[str, Any]:
    return await run_in_threadpool(
        report_context, board, room, request.query_params.get("session"), _patient_param(request)
    )


@page
async def report(request: Request, board: BoardContext, sess: Session) -> Response:
    room = _room_param(request)
    if room is None:
        return PlainTextResponse("no such room", status_code=404)
    try:
        ctx = await _report_ctx(request, board, room)
    except ValueError as exc:
        return PlainTextResponse(str(exc).replace("--patient-ref", "patient"), status_code=400)
    return board.render(request, "report.html", sess, **ctx)


@page
async def report_pdf(request: Request, board: BoardContext, sess: Session) -> Response:
    """The report printed by headless Chromium (the same HTML, rendered to a file first)."""
    room = _room_param(request)
    if room is None:
        return PlainTextResponse("no such room", status_code=404)
    try:
        patient = _patient_param(request)
    except ValueError as exc:
        return PlainTextResponse(str(exc).replace("--patient-ref", "patient"), status_code=400)
    try:
        async with board.renders.slot():  # at most two Chromiums; a bounded wait, then 503
            ctx = await run_in_threadpool(
                report_context, board, room, request.query_params.get("session"), patient
            )
            html = board.templates.get_template("report.html").render(
                site=board.site, user=sess.name, role=sess.role, can_act=False, csrf="",
                no_auth=False, printing=True, **board.zone_context(),
                css=(Path(__file__).parent / "static/board.css").read_text(), **ctx,
            )  # fmt: skip
            pdf = await run_in_threadpool(print_pdf, board.config.chromium, html)
    except QueueFull as exc:
        log.warning("PDF refused: %s", exc)
        return PlainTextResponse(
            f"The PDF printer is busy ({exc}). Try again in {exc.retry_after_s} s.",
            status_code=503,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("PDF failed: %s", exc)
        return PlainTextResponse(f"PDF could not be made: {exc}", status_code=500)
    name = f"{board.site}-{room}-{ctx['session_id'] or 'session'}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip


def print_pdf(chromium: str, html: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="roomctl-pdf-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html)
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
             "--no-pdf-header-footer", f"--print-to-pdf={out}", src.as_uri()],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return out.read_bytes()


@page
async def call_log(request: Request, board: BoardContext, sess: Session) -> Response:
    """One day of calls: the site's local day (`?day=YYYY-MM-DD`, default today there)."""
    tz = board.config.tz
    try:
        day = date.fromisoformat(
            request.query_params.get("day") or sitetime.today(tz).isoformat()
        )
    except ValueError:
        return PlainTextResponse("day must be YYYY-MM-DD", status_code=400)
    start, end = sitetime.day_bounds(day, tz)
    rows = await run_in_threadpool(
        history.calls, board.history, board.site, format_ts(start), format_ts(end)
    )
    # answered and response as the reports define them (docs/BOARD.md, "Reports"); a test
    # call is listed, labelled, and counted in no figure
    every, _ = await run_in_threadpool(records_between, board, start, end, True)
    kinds = {(r.room, r.call_id): r.call_type for r in every}
    records = [r for r in every if r.call_type != TEST_CALL_TYPE]
    patients = [c for c in rows if kinds.get((c["room"], c["call_id"])) != TEST_CALL_TYPE]
    return board.render(
        request, "calls.html", sess, day=day.isoformat(), calls=rows,
        summary=history.daily_summary(patients), answers=call_report(records).total,
        answered={(r.room, r.call_id): r for r in records},
        what={key: CALL_WORD.get(kind, kind.upper()) for key, kind in kinds.items()},
        prev_day=(day - timedelta(days=1)).isoformat(),
        next_day=(day + timedelta(days=1)).isoformat(),
    )  # fmt: skip


def routes() -> list[Route]:
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview, methods=["GET"]),
        Route("/rooms/{room}", room_page, methods=["GET"]),
        Route("/rooms/{room}/report", report, methods=["GET"]),
        Route("/rooms/{room}/report.pdf", report_pdf, methods=["GET"]),
        Route("/calls", call_log, methods=["GET"]),
    ]
