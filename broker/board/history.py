"""The logger's history as the board shows it: read through the logger's store (read-only).

The board never writes there. Without a store (`roomctl board` without `--db`) every question
has an empty answer; a read-only SQLite store answers empty while its file does not exist yet
(logger not started), and never creates it. Times are the stored RFC 3339 text.
"""

from __future__ import annotations

import statistics
from typing import Any

from broker.logger.store import LogStore
from broker.logger.store.base import VITAL_COLUMNS

__all__ = [
    "VITAL_COLUMNS", "calls", "daily_summary", "events", "pages", "session", "sessions", "vitals",
]  # fmt: skip


def session(
    store: LogStore | None, site: str, room: str, session_id: str
) -> dict[str, Any] | None:
    return None if store is None else store.session(site, room, session_id)


def sessions(store: LogStore | None, site: str, room: str, limit: int = 20) -> list[dict[str, Any]]:
    return [] if store is None else store.sessions(site, room, limit)


def vitals(
    store: LogStore | None, site: str, room: str, since: str, until: str | None = None
) -> list[dict[str, Any]]:
    """Readings of a room from `since` (inclusive) to `until` (exclusive), oldest first."""
    return [] if store is None else store.vitals(site, room, since, until)


def events(
    store: LogStore | None, site: str, room: str, since: str, until: str | None = None
) -> list[dict[str, Any]]:
    return [] if store is None else store.events(site, room, since, until)


def pages(
    store: LogStore | None, site: str, room: str, since: str, until: str | None = None
) -> list[dict[str, Any]]:
    """The notifier's page attempts about the room's calls in [since, until), oldest first."""
    return [] if store is None else store.pages(site, room, since, until)


def calls(store: LogStore | None, site: str, since: str, until: str) -> list[dict[str, Any]]:
    """Calls placed in [since, until), newest first."""
    return [] if store is None else store.calls(site, since, until)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def daily_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and response times (placed to claimed) of one day's calls."""
    response = sorted(float(r["response_s"]) for r in rows if r["response_s"] is not None)
    resolved = sorted(float(r["resolved_s"]) for r in rows if r["resolved_s"] is not None)
    by_priority: dict[str, int] = {}
    for r in rows:
        key = r["priority"] or "normal"
        by_priority[key] = by_priority.get(key, 0) + 1
    return {
        "calls": len(rows),
        "by_priority": by_priority,
        "claimed": len(response),
        "never_claimed": sum(1 for r in rows if r["claimed_at"] is None),
        "escalated": sum(1 for r in rows if r["escalated_at"] is not None),
        "open": sum(1 for r in rows if r["cancelled_at"] is None),
        "response_median_s": statistics.median(response) if response else None,
        "response_p90_s": _percentile(response, 90),
        "response_max_s": response[-1] if response else None,
        "resolved_median_s": statistics.median(resolved) if resolved else None,
    }
