"""JSON and event-stream endpoints: live stream (SSE), snapshot, session history, actions.

Server-sent events: `event: site` (broker link, logger status, server clock),
`event: room` (one room's view, see `live.room_view`) and `event: queue` (the site's open
calls and alarms, most urgent first, see `queue.site_queue`; after any room's change, also on
a one-room stream; `?queue=only` streams the site and the queue alone, for pages without
tiles). The stream subscribes to the hub
*before* taking its snapshot, so nothing that changes in between is missed. A comment line
every 15 s keeps proxies from closing it; the stream ends when its login session ends: at
logout at once, and within a second when it expires or its account is removed or disabled
(the board's session watcher, `app.py`); the browser then reconnects, is refused and goes to
the login page.

Actions answer with the command's `request_id`; what became of it (sent, applied, refused,
no answer: see `commands.py`) comes with the room's view and from `/api/rooms/{room}/commands`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from contract.messages import Phase, is_ident

from . import assign_api, ops_routes, receipt_api, session_api
from .commands import ANSWER_WITHIN_S
from .context import SESSION_COOKIE, BoardContext
from .feed import CommandNotSent
from .guard import act, read
from .hub import QUEUE, SITE
from .queue import site_queue
from .session_data import session_payload
from .users import Session, session_key

log = logging.getLogger("roomctl.board")
PING_S = 15.0
MAX_BODY = 4096


def site_view(board: BoardContext) -> dict[str, Any]:
    return {
        "site": board.site,
        "broker_connected": board.feed.connected.is_set(),
        "logger_status": board.state.logger_status,
        "loggers": board.state.logger_statuses(),
        "server_now_ms": int(board.clock() * 1000),
        "rejected": board.state.rejected,
        "cert_warnings": board.certs.current(),
        "assignments": board.assignments.rooms(),
        "nurses": board.assignments.nurses(),
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@read
async def stream(request: Request, board: BoardContext, sess: Session) -> Response:
    room = request.query_params.get("room") or None
    if room is not None and not is_ident(room):
        return board.json_error(404, "no such room")
    queue_only = request.query_params.get("queue") == "only"
    token = request.cookies.get(SESSION_COOKIE)
    sub = board.hub.subscribe(
        "" if queue_only else room,
        None if board.config.no_auth or not token else session_key(token),
    )

    def queue_event(now: float) -> str:
        return _sse("queue", {"items": site_queue(board.state.views(now))})

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            yield _sse("site", site_view(board))
            now = board.clock()
            for view in board.state.views(now):
                if not queue_only and (room is None or view["room"] == room):
                    yield _sse("room", view)
            yield queue_event(now)
            while not board.stopping.is_set():
                try:
                    await asyncio.wait_for(sub.event.wait(), PING_S)
                except TimeoutError:
                    if sub.closed:
                        return
                    if sess.expires_at < board.clock() or board.session(request) is None:
                        return
                    yield ": ping\n\n" + _sse("site", site_view(board))
                    continue
                if sub.closed:  # logged out, removed or disabled: not one more event
                    return
                now = board.clock()
                keys = sub.take()
                for key in sorted(keys - {QUEUE}):
                    if key == SITE:
                        yield _sse("site", site_view(board))
                        continue
                    changed = board.state.view(key, now)
                    if changed is not None:
                        yield _sse("room", changed)
                if keys - {SITE}:
                    yield queue_event(now)
        finally:
            board.hub.unsubscribe(sub)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@read
async def snapshot(request: Request, board: BoardContext, sess: Session) -> Response:
    return JSONResponse({"site": site_view(board), "rooms": board.state.views(board.clock())})


@read
async def session_data(request: Request, board: BoardContext, sess: Session) -> Response:
    room = str(request.path_params["room"])
    if not is_ident(room):
        return board.json_error(404, "no such room")
    wanted = request.query_params.get("session")
    data = await run_in_threadpool(session_payload, board, room, wanted)
    return JSONResponse(data)


async def _action(request: Request, board: BoardContext) -> tuple[str, dict[str, Any]] | Response:
    """The room and the JSON body of an action (the guard has checked who may act), or the
    refusal."""
    room = str(request.path_params["room"])
    if not is_ident(room):
        return board.json_error(404, "no such room")
    body = await board.json_object(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    return room, body


async def _send(
    board: BoardContext, sess: Session, room: str, name: str, cmd: dict[str, Any], what: str
) -> Response:
    if board.state.is_offline(room):  # it would act late, or never: say so instead
        board.users.audit(sess.name, name, room, json.dumps(cmd), "not sent: room offline")
        return board.json_error(409, f"room {room} is offline: command not sent")
    request_id = str(cmd["request_id"])
    # tracked before it is published: the room's answer may come back before the PUBACK
    board.state.command_sent(room, name, sess.name, request_id, board.clock(), what)
    try:
        sent = await run_in_threadpool(board.feed.publish_command, room, name, cmd)
    except ValidationError as exc:
        board.state.command_not_sent(room, request_id)
        return board.json_error(400, f"invalid command: {exc.errors()[0]['msg']}")
    except CommandNotSent as exc:
        board.state.command_not_sent(room, request_id)
        board.users.audit(sess.name, name, room, json.dumps(cmd), f"not sent: {exc}")
        return board.json_error(503, f"command not sent: {exc}")
    board.users.audit(sess.name, name, room, sent, "sent")
    log.info("%s sent cmd/%s to room %s: %s", sess.name, name, room, sent)
    board.hub.notify_threadsafe(room)  # streams show it as sent
    # and, if the room never answers, as "no answer" once the bound has passed
    asyncio.get_running_loop().call_later(ANSWER_WITHIN_S + 0.5, board.hub.notify_threadsafe, room)
    return JSONResponse(
        {"ok": True, "request_id": request_id, "status": "sent", "sent": json.loads(sent)}
    )


@act
async def claim(request: Request, board: BoardContext, sess: Session) -> Response:
    got = await _action(request, board)
    if isinstance(got, Response):
        return got
    room, body = got
    call_id = body.get("call_id")
    if call_id not in board.state.active_call_ids(room):  # any of the room's active calls
        return board.json_error(409, "that call is no longer active in this room")
    cmd = {"call_id": call_id, "by": sess.name, "request_id": uuid.uuid4().hex[:16]}
    return await _send(board, sess, room, "claim", cmd, f"call {call_id}")


@act
async def set_phase(request: Request, board: BoardContext, sess: Session) -> Response:
    got = await _action(request, board)
    if isinstance(got, Response):
        return got
    room, body = got
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
    return await _send(board, sess, room, "phase", cmd, phase.value)


@act
async def test_call(request: Request, board: BoardContext, sess: Session) -> Response:
    """Ask the room to place a test call (a nurse or the charge nurse; never a viewer or a
    wall display): the room answers with `call_placed` (type `test`), audited like any
    command."""
    got = await _action(request, board)
    if isinstance(got, Response):
        return got
    room, _ = got
    cmd = {"by": sess.name, "request_id": uuid.uuid4().hex[:16]}
    return await _send(board, sess, room, "test_call", cmd, "")


@read
async def room_commands(request: Request, board: BoardContext, sess: Session) -> Response:
    """The room's recent staff commands, newest first, each with its status."""
    room = str(request.path_params["room"])
    if not is_ident(room):
        return board.json_error(404, "no such room")
    return JSONResponse({"room": room, "commands": board.state.commands(room, board.clock())})


@read
async def whoami(request: Request, board: BoardContext, sess: Session) -> Response:
    return JSONResponse({"user": sess.name, "role": sess.role})


def routes() -> list[Route]:
    return [
        *assign_api.routes(),
        *receipt_api.routes(),
        *session_api.routes(),
        Route("/api/stream", stream, methods=["GET"]),
        Route("/api/rooms", snapshot, methods=["GET"]),
        Route("/api/rooms/{room}/session", session_data, methods=["GET"]),
        Route("/api/rooms/{room}/commands", room_commands, methods=["GET"]),
        Route("/api/rooms/{room}/claim", claim, methods=["POST"]),
        Route("/api/rooms/{room}/phase", set_phase, methods=["POST"]),
        Route("/api/rooms/{room}/test_call", test_call, methods=["POST"]),
        Route("/api/whoami", whoami, methods=["GET"]),
        *ops_routes.routes(),  # /metrics, /healthz
    ]
