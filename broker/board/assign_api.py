"""The shift's assignments on the board (issue 15): the charge nurse assigns each room to a
nurse; every change is audited and published retained for the notifier.

`GET /api/assignments` (anyone logged in): `{rooms: {room: nurse}, nurses: [...]}`.
`POST /api/assignments` `{room, nurse}` (`nurse: null` unassigns): the charge nurse only
(a nurse gets 403, audited); an unknown nurse or a bad room is a 400 naming the field.
The change is kept even when the broker is down (answered 202 with `published: false`): the
board publishes the whole table again on every reconnect.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contract.messages import is_ident

from .context import BoardContext
from .feed import CommandNotSent
from .guard import act, read
from .users import Session

MAX_BODY = 1024


@read
async def get_assignments(request: Request, board: BoardContext, sess: Session) -> Response:
    return JSONResponse(
        {"rooms": board.assignments.rooms(), "nurses": board.assignments.nurses()}
    )


@act
async def set_assignment(request: Request, board: BoardContext, sess: Session) -> Response:
    body = await board.json_object(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    room, nurse = body.get("room"), body.get("nurse")
    if not sess.can_assign:
        board.users.audit(sess.name, "assign", str(room)[:64], None, f"refused: {sess.role}")
        return board.json_error(403, "only the charge nurse assigns rooms")
    if not isinstance(room, str) or not is_ident(room):
        return board.json_error(400, "room: not a room id")
    if nurse is not None and nurse not in board.assignments.nurses():
        return board.json_error(400, "nurse: no nurse account of that name")
    board.assignments.assign(room, nurse, sess.name)
    board.users.audit(sess.name, "assign", room, json.dumps({"nurse": nurse}), "ok")
    published = True
    try:
        await run_in_threadpool(
            board.feed.publish_assignments, board.assignments.rooms(), sess.name
        )
    except CommandNotSent:
        published = False
    board.hub.notify_threadsafe(None)  # every screen's site event carries the table
    return JSONResponse(
        {"ok": True, "rooms": board.assignments.rooms(), "published": published},
        status_code=200 if published else 202,
    )


def routes() -> list[Route]:
    return [
        Route("/api/assignments", get_assignments, methods=["GET"]),
        Route("/api/assignments", set_assignment, methods=["POST"]),
    ]
