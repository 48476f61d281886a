"""The manager's pages: call reports, room reliability and the audit viewer, each with a CSV
download of every table (docs/BOARD.md, "Reports").

Who may open them (`guard.page_for`): the reports and the reliability page are for every
staff login (viewer, nurse, charge: the same calls and names the call log already shows
them), never a kiosk (a wall display in a corridor). The audit viewer (who did what on the
board, logins and refusals included) is for the charge nurse only.

Every page takes a range of local days, `?from=YYYY-MM-DD&to=YYYY-MM-DD` (both inclusive;
default the last 7 days up to today), read in the site's time zone (`site_tz`); times are
shown 24-hour with the zone named. The statistics are computed in pure modules
(`call_stats.py`, `room_reliability.py`) from `LogStore.report_rows`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from broker.logger.store import StoreError
from broker.logger.store.report_sql import MAX_REPORT_ROWS
from contract.messages import is_ident
from contract.timefmt import format_ts

from .call_stats import TABLES, CallRecord, Report, ResponseStats, call_records, day_bounds, report
from .context import BoardContext
from .guard import page_for
from .room_reliability import RoomReliability, reliability
from .users import AuditRow, Session

T = TypeVar("T")

log = logging.getLogger("roomctl.board")
REPORT_ROLES = ("viewer", "nurse", "charge")
AUDIT_ROLES = ("charge",)
DEFAULT_DAYS = 7
MAX_DAYS = 366
ANSWER_WINDOW = timedelta(days=1)  # a call placed at the range's end is read this long after it
MAX_AUDIT_ROWS = 5000
RELIABILITY_COLUMNS = (
    "room", "offline periods", "offline s", "longest offline s", "monitor disconnects",
    "monitor lost s", "restarts", "outbox peak", "outbox peak at", "oldest waiting s",
    "quarantined", "most common reason",
)  # fmt: skip
AUDIT_COLUMNS = ("time", "person", "action", "room", "detail", "result")
STATS_COLUMNS = ("calls", "answered", "median s", "p90 s", "max s")


def site_tz(board: BoardContext) -> ZoneInfo:
    """The site's time zone for days, shifts and times on these pages (`--timezone`,
    contract/sitetime.py)."""
    return board.config.tz


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def query(self) -> str:
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"

    @property
    def label(self) -> str:
        return f"{self.first.isoformat()}_{self.last.isoformat()}"


def day_range(request: Request, board: BoardContext, tz: ZoneInfo) -> DayRange:
    """`from`/`to` of the query (local days); ValueError naming the field when bad."""
    today = datetime.fromtimestamp(board.clock(), tz).date()
    got: dict[str, date] = {}
    for name, default in (("to", today), ("from", None)):
        text = request.query_params.get(name)
        if not text:
            got[name] = default or got["to"] - timedelta(days=DEFAULT_DAYS - 1)
            continue
        try:
            got[name] = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}: {text[:20]!r} is not a day (YYYY-MM-DD)") from None
    if got["to"] < got["from"]:
        raise ValueError("to: must not be before from")
    if (got["to"] - got["from"]).days >= MAX_DAYS:
        raise ValueError(f"from, to: at most {MAX_DAYS} days at once")
    start, end = day_bounds(got["from"], got["to"], tz)
    return DayRange(got["from"], got["to"], start, end)


def local(at: datetime | None, tz: ZoneInfo) -> str:
    """24-hour local time, to the second."""
    return "" if at is None else at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """`1:05` (m:ss), `2:03:00` (h:mm:ss); '–' for none."""
    if seconds is None:
        return "–"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first: a
    user name, a quarantine reason) gets a leading `'` (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_response(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV download: a header row, then the rows; UTF-8, CRLF line ends (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return Response(
        out.getvalue().encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _bad(exc: ValueError) -> Response:
    return PlainTextResponse(str(exc), status_code=400)


def _unreadable(exc: StoreError) -> Response:
    """The logger's database could not be read (locked, gone, a server down): say so."""
    log.warning("report: the logger's database could not be read: %s", exc)
    return PlainTextResponse(
        f"The logger's database could not be read ({exc}). Try again in a minute.",
        status_code=503,
        headers={"Retry-After": "60"},
    )


async def _read_range(
    request: Request, board: BoardContext, build: Callable[[DayRange, ZoneInfo], T]
) -> tuple[ZoneInfo, DayRange, T] | Response:
    """The site's zone, the asked range and what `build` read for it (off the event loop), or
    the answer to give instead: 400 naming a bad field, 503 for an unreadable database."""
    tz = site_tz(board)
    try:
        rng = day_range(request, board, tz)
    except ValueError as exc:
        return _bad(exc)
    try:
        got = await run_in_threadpool(build, rng, tz)
    except StoreError as exc:
        return _unreadable(exc)
    return tz, rng, got


# -- call reports ---------------------------------------------------------------------------
def records_between(
    board: BoardContext, start: datetime, end: datetime, tests: bool = False
) -> tuple[list[CallRecord], bool]:
    """The calls placed in [start, end) with their answers (looked for up to
    `ANSWER_WINDOW` later), and whether the store's cap cut the rows (test calls only if
    `tests`)."""
    if board.history is None:
        return [], False
    rows = board.history.report_rows(
        "call_events", board.site, format_ts(start), format_ts(end + ANSWER_WINDOW)
    )
    records = [r for r in call_records(rows, tests) if r.placed_at < end]
    return records, len(rows) >= MAX_REPORT_ROWS


def build_report(board: BoardContext, rng: DayRange, tz: ZoneInfo) -> tuple[Report, bool]:
    """The report of calls placed in the range, and whether the store's cap cut the rows."""
    records, capped = records_between(board, rng.start, rng.end)
    return report(records, board.config.shifts, tz), capped


def _stats_row(s: ResponseStats) -> tuple[Any, ...]:
    return (s.key, s.calls, s.answered, _secs(s.median_s), _secs(s.p90_s), _secs(s.max_s))


@page_for(*REPORT_ROLES)
async def reports_page(request: Request, board: BoardContext, sess: Session) -> Response:
    got = await _read_range(request, board, partial(build_report, board))
    if isinstance(got, Response):
        return got
    tz, rng, (rep, capped) = got
    return board.render(
        request, "reports.html", sess, rng=rng, rep=rep, tables=TABLES, capped=capped,
        tz_name=str(tz), duration=duration,
        shifts=[f"{s.name} {s.start:%H:%M}-{s.end:%H:%M}" for s in board.config.shifts],
    )  # fmt: skip


@page_for(*REPORT_ROLES)
async def reports_csv(request: Request, board: BoardContext, sess: Session) -> Response:
    table = request.query_params.get("table", "")
    if table not in TABLES:
        return _bad(ValueError(f"table: must be one of {', '.join(TABLES)}"))
    got = await _read_range(request, board, partial(build_report, board))
    if isinstance(got, Response):
        return got
    _, rng, (rep, _) = got
    name = f"roomctl-{board.site}-calls-by-{table}-{rng.label}.csv"
    return csv_response(name, (table, *STATS_COLUMNS), map(_stats_row, rep.tables[table]))


# -- room reliability -----------------------------------------------------------------------
def build_reliability(
    board: BoardContext, rng: DayRange, tz: ZoneInfo | None = None
) -> list[RoomReliability]:
    if board.history is None:
        return []
    since, until = format_ts(rng.start), format_ts(rng.end)
    got = {
        kind: board.history.report_rows(kind, board.site, since, until)
        for kind in ("availability", "availability_before", "room_events", "backlog", "quarantine")
    }
    now = datetime.fromtimestamp(board.clock(), UTC)
    return reliability(rng.start, rng.end, now, **got)


def _reliability_row(r: RoomReliability, tz: ZoneInfo) -> tuple[Any, ...]:
    longest = max((p.seconds for p in r.offline), default=None)
    return (
        r.room, len(r.offline), _secs(r.offline_s), _secs(longest), len(r.monitor_lost),
        _secs(r.monitor_lost_s), r.restarts, r.backlog_peak, local(r.backlog_peak_at, tz),
        _secs(r.backlog_oldest_s), r.quarantined, r.quarantine_reason or "",
    )  # fmt: skip


@page_for(*REPORT_ROLES)
async def reliability_page(request: Request, board: BoardContext, sess: Session) -> Response:
    got = await _read_range(request, board, partial(build_reliability, board))
    if isinstance(got, Response):
        return got
    tz, rng, rooms = got
    return board.render(
        request, "reliability.html", sess, rng=rng, rooms=rooms, tz_name=str(tz),
        duration=duration, local=lambda at: local(at, tz),
    )  # fmt: skip


@page_for(*REPORT_ROLES)
async def reliability_csv(request: Request, board: BoardContext, sess: Session) -> Response:
    got = await _read_range(request, board, partial(build_reliability, board))
    if isinstance(got, Response):
        return got
    tz, rng, rooms = got
    name = f"roomctl-{board.site}-reliability-{rng.label}.csv"
    return csv_response(name, RELIABILITY_COLUMNS, (_reliability_row(r, tz) for r in rooms))


# -- audit ----------------------------------------------------------------------------------
def _audit_filters(request: Request) -> tuple[str | None, str | None]:
    person = (request.query_params.get("person") or "").strip() or None
    room = (request.query_params.get("room") or "").strip() or None
    if person is not None and (len(person) > 64 or not person.isprintable()):
        raise ValueError("person: at most 64 printable characters")
    if room is not None and not is_ident(room):
        raise ValueError(f"room: {room[:20]!r} is not a room name")
    return person, room


async def _audit_rows(
    request: Request, board: BoardContext, tz: ZoneInfo
) -> tuple[DayRange, str | None, str | None, list[AuditRow]]:
    rng = day_range(request, board, tz)
    person, room = _audit_filters(request)
    rows = await run_in_threadpool(
        board.users.audit_query, rng.start.timestamp(), rng.end.timestamp(), person, room,
        MAX_AUDIT_ROWS,
    )  # fmt: skip
    return rng, person, room, rows


def _audit_row(r: AuditRow, tz: ZoneInfo) -> tuple[Any, ...]:
    at = datetime.fromtimestamp(r.at, UTC)
    return (local(at, tz), r.name, r.action, r.room or "", r.payload or "", r.result)


@page_for(*AUDIT_ROLES)
async def audit_page(request: Request, board: BoardContext, sess: Session) -> Response:
    tz = site_tz(board)
    try:
        rng, person, room, rows = await _audit_rows(request, board, tz)
    except ValueError as exc:
        return _bad(exc)
    filters = urlencode(
        {"from": rng.first, "to": rng.last}
        | {k: v for k, v in (("person", person), ("room", room)) if v}
    )
    return board.render(
        request, "audit.html", sess, rng=rng, person=person or "", room=room or "",
        rows=[_audit_row(r, tz) for r in rows], capped=len(rows) >= MAX_AUDIT_ROWS,
        tz_name=str(tz), filters=filters,
    )  # fmt: skip


@page_for(*AUDIT_ROLES)
async def audit_csv(request: Request, board: BoardContext, sess: Session) -> Response:
    tz = site_tz(board)
    try:
        rng, _, _, rows = await _audit_rows(request, board, tz)
    except ValueError as exc:
        return _bad(exc)
    name = f"roomctl-{board.site}-audit-{rng.label}.csv"
    return csv_response(name, AUDIT_COLUMNS, (_audit_row(r, tz) for r in rows))


def routes() -> list[Route]:
    return [
        Route("/reports", reports_page, methods=["GET"]),
        Route("/reports.csv", reports_csv, methods=["GET"]),
        Route("/reliability", reliability_page, methods=["GET"]),
        Route("/reliability.csv", reliability_csv, methods=["GET"]),
        Route("/audit", audit_page, methods=["GET"]),
        Route("/audit.csv", audit_csv, methods=["GET"]),
    ]
