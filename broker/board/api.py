"""JSON and event-stream endpoints: live stream (SSE), snapshot, session history, actions.

Server-sent events: `event: site` (broker link, logger status, server clock) and
`event: room` (one room's view, see `live.room_view`). The stream subscribes to the hub
*before* taking its snapshot, so nothing that changes in between is missed. A comment line
every 15 s keeps proxies from closing it; the stream ends when the login session expires
(the browser then reconnects, is refused and goes to the login page).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from contract.messages import IDENT_RE, CallStatus, Phase
from contract.timefmt import format_ts

from . import history
from .feed import CommandNotSent
from .hub import SITE
from .live import event_dict
from .pages import session_bounds
from .thresholds import thresholds_for

if TYPE_CHECKING:
    from .app import Board
    from .users import Session

log = logging.getLogger("roomctl.board")
PING_S = 15.0
MAX_BODY = 4096


def _board(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


def site_view(board: Board) -> dict[str, Any]:
    return {
        "site": board.site,
        "broker_connected": board.feed.connected.is_set(),
        "logger_status": board.state.logger_status,
        "server_now_ms": int(board.clock() * 1000),
        "rejected": board.state.rejected,
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream(request: Request) -> Response:
    board = _board(request)
    sess = board.session(request)
    if sess is None:
        return board.json_error(401, "log in")
    room = request.query_params.get("room") or None
    if room is not None and not IDENT_RE.match(room):
        return board.json_error(404, "no such room")
    sub = board.hub.subscribe(room)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            yield _sse("site", site_view(board))
            now = board.clock()
            for view in board.state.views(now):
                if room is None or view["room"] == room:
                    yield _sse("room", view)
            while not board.stopping.is_set():
                try:
                    await asyncio.wait_for(sub.event.wait(), PING_S)
                except TimeoutError:
                    if sess.expires_at < board.clock() or board.session(request) is None:
                        return
                    yield ": ping\n\n" + _sse("site", site_view(board))
                    continue
                now = board.clock()
                for key in sorted(sub.take()):
                    if key == SITE:
                        yield _sse("site", site_view(board))
                        continue
                    changed = board.state.view(key, now)
                    if changed is not None:
                        yield _sse("room", changed)
        finally:
            board.hub.unsubscribe(sub)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def snapshot(request: Request) -> Response:
    board = _board(request)
    if board.session(request) is None:
        return board.json_error(401, "log in")
    return JSONResponse({"site": site_view(board), "rooms": board.state.views(board.clock())})


def _session_data(board: Board, room: str, session_id: str | None) -> dict[str, Any]:
    since, until, row = session_bounds(board, room, session_id)
    rows = history.vitals(board.config.logger_db, board.site, room, since, until)
    last = max((int(r["seq"]) for r in rows), default=0)
    for v in board.state.recent_vitals(room, since_seq=last):  # what the logger has not yet
        if format_ts(v.ts) >= since:
            rows.append({"seq": v.seq, "ts": format_ts(v.ts),
                         **{c: getattr(v, c) for c in history.VITAL_COLUMNS}})  # fmt: skip
    evs = history.events(board.config.logger_db, board.site, room, since, until)
    seen = {int(e["seq"]) for e in evs}
    evs += [event_dict(e) for e in board.state.recent_events(room)
            if e.seq not in seen and format_ts(e.ts) >= since]  # fmt: skip
    evs.sort(key=lambda e: (e["ts"], e["seq"]))
    live = board.state.view(room, board.clock()) or {}
    return {
        "room": room,
        "session_id": (row or {}).get("session_id") or live.get("session_id"),
        "since": since,
        "until": until,
        "vitals": rows,
        "events": evs,
        "thresholds": thresholds_for(live.get("phase") or "infusion"),
    }


async def session_data(request: Request) -> Response:
    board = _board(request)
    if board.session(request) is None:
        return board.json_error(401, "log in")
    room = str(request.path_params["room"])
    if not IDENT_RE.match(room):
        return board.json_error(404, "no such room")
    data = await run_in_threadpool(_session_data, board, room, request.query_params.get("session"))
    return JSONResponse(data)


async def _actor(request: Request) -> tuple[Session, str, dict[str, Any]] | Response:
    """The nurse asking, the room and the JSON body of an action, or the refusal."""
    board = _board(request)
    sess = board.session(request)
    if sess is None:
        return board.json_error(401, "log in")
    if not board.csrf_ok(request, sess):
        return board.json_error(403, "missing or wrong CSRF token")
    if not sess.can_act:
        board.users.audit(sess.name, "refused", request.path_params.get("room"), None, "viewer")
        return board.json_error(403, f"{sess.name} is a viewer: viewers cannot act")
    room = str(request.path_params["room"])
    if not IDENT_RE.match(room):
        return board.json_error(404, "no such room")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return board.json_error(413, "body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return board.json_error(400, "body must be JSON")
    if not isinstance(body, dict):
        return board.json_error(400, "body must be a JSON object")
    return sess, room, body


async def _send(board: Board, sess: Session, room: str, name: str, cmd: dict[str, Any]) -> Response:
    try:
        sent = await run_in_threadpool(board.feed.publish_command, room, name, cmd)
    except ValidationError as exc:
        return board.json_error(400, f"invalid command: {exc.errors()[0]['msg']}")
    except CommandNotSent as exc:
        board.users.audit(sess.name, name, room, json.dumps(cmd), f"not sent: {exc}")
        return board.json_error(503, f"command not sent: {exc}")
    board.users.audit(sess.name, name, room, sent, "sent")
    log.info("%s sent cmd/%s to room %s: %s", sess.name, name, room, sent)
    return JSONResponse({"ok": True, "sent": json.loads(sent)})


async def claim(request: Request) -> Response:
    got = await _actor(request)
    if isinstance(got, Response):
        return got
    sess, room, body = got
    board = _board(request)
    call_id = body.get("call_id")
    current = board.state.current_call(room)
    if current is None or current.status == CallStatus.IDLE or current.call_id != call_id:
        return board.json_error(409, "that call is no longer active in this room")
    cmd = {"call_id": call_id, "by": sess.name, "request_id": uuid.uuid4().hex[:16]}
    return await _send(board, sess, room, "claim", cmd)


async def set_phase(request: Request) -> Response:
    got = await _actor(request)
    if isinstance(got, Response):
        return got
    sess, room, body = got
    board = _board(request)
    if body.get("confirm") is not True:
        return board.json_error(400, "a phase change must be confirmed")
    try:
        phase = Phase(str(body.get("phase")))
    except ValueError:
        return board.json_error(400, "unknown phase")
    cmd: dict[str, Any] = {
        "phase": phase.value,
        "by": sess.name,
        "request_id": uuid.uuid4().hex[:16],
    }
    if body.get("planned_minutes") not in (None, ""):
        cmd["planned_minutes"] = body["planned_minutes"]
    return await _send(board, sess, room, "phase", cmd)


async def whoami(request: Request) -> Response:
    board = _board(request)
    sess = board.session(request)
    if sess is None:
        return board.json_error(401, "log in")
    return JSONResponse({"user": sess.name, "role": sess.role})


async def healthz(request: Request) -> Response:
    board = _board(request)
    ok = board.feed.connected.is_set()
    return JSONResponse({"ok": ok, "broker_connected": ok}, status_code=200 if ok else 503)


def routes() -> list[Route]:
    return [
        Route("/api/stream", stream, methods=["GET"]),
        Route("/api/rooms", snapshot, methods=["GET"]),
        Route("/api/rooms/{room}/session", session_data, methods=["GET"]),
        Route("/api/rooms/{room}/claim", claim, methods=["POST"]),
        Route("/api/rooms/{room}/phase", set_phase, methods=["POST"]),
        Route("/api/whoami", whoami, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
