"""`/metrics` (Prometheus) and `/healthz` of the board, public like any scrape target: no
patient data in either (labels site, room and call priority only; checks name duties)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.ops.metrics import Health, metrics_body

from .context import BoardContext
from .guard import public


def board_health(board: BoardContext) -> Health:
    """The board can do its job: connected to the broker (live rooms, commands), its own
    database writable (logins, sessions, audit), the logger's database readable (reports)."""

    def broker() -> str | None:
        return None if board.feed.connected.is_set() else "not connected to the broker"

    def board_database() -> str | None:
        problem = board.users.writable()
        return None if problem is None else f"board database not writable: {problem}"

    def logger_database() -> str | None:
        if board.history is None:
            return None  # run without --db: no history to read, nothing broken
        board.history.sessions(board.site, "healthz", 1)  # raises when unreadable
        return None

    return Health(
        {"broker": broker, "board_database": board_database, "logger_database": logger_database}
    )


@public
async def metrics(request: Request, board: BoardContext) -> Response:
    body, ctype = metrics_body(board.metrics.registry)
    return Response(body, media_type=None, headers={"Content-Type": ctype})


@public
async def healthz(request: Request, board: BoardContext) -> Response:
    ok, doc = await run_in_threadpool(board_health(board).report)
    doc["broker_connected"] = board.feed.connected.is_set()
    return JSONResponse(doc, status_code=200 if ok else 503)


def routes() -> list[Route]:
    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
