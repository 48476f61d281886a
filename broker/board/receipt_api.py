"""Proof of delivery from the board's screens (issue 15): each open page says, once per call,
that the call reached it (`POST /api/receipts {room, call_id, screen}`), and the board
publishes a `CallReceipt` on the room's `receipt/<board's staff name>`. The room stops
waiting for one (its local escalation, `controller/core/receipts.py`); the logger keeps it;
the board shows on each call how many screens and phones have it.

Any logged-in role sends receipts (a wall display that only watches still counts as a screen
that shows the call); the CSRF token is required as for any POST.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contract.messages import is_ident
from contract.staff import CallReceipt

from .context import BoardContext
from .feed import CommandNotSent
from .guard import own_session
from .users import Session

MAX_BODY = 1024
SCREEN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@own_session
async def post_receipt(request: Request, board: BoardContext, sess: Session) -> Response:
    body = await board.json_object(request, MAX_BODY)
    if isinstance(body, Response):
        return body
    room, call_id, screen = body.get("room"), body.get("call_id"), body.get("screen")
    if not isinstance(room, str) or not is_ident(room):
        return board.json_error(400, "room: not a room id")
    if not isinstance(screen, str) or not SCREEN.match(screen):
        return board.json_error(400, "screen: 1-40 letters, digits, '-' or '_'")
    if call_id not in board.state.active_call_ids(room):
        return board.json_error(409, "call_id: not an active call of this room")
    receipt = CallReceipt(
        call_id=str(call_id), by=sess.name[:64], via="screen", where=screen,
        issued_at=datetime.now(UTC),
    )  # fmt: skip
    try:
        await run_in_threadpool(board.feed.publish_receipt, room, receipt)
    except CommandNotSent as exc:
        return board.json_error(503, f"receipt not sent: {exc}")
    return JSONResponse({"ok": True})


def routes() -> list[Route]:
    return [Route("/api/receipts", post_receipt, methods=["POST"])]
