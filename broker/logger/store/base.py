"""The logger's store: what the logger, the board, exports and audits ask of the database.

`LogStore` is the seam between the central side and the database engine (SQLite today in
`sqlite.py`, PostgreSQL later). Nothing outside `broker/logger/store/` writes SQL against the
logger's schema; everything goes through these methods. The interface speaks in plain Python
values only: times are the stored RFC 3339 UTC text (`contract.timefmt.format_ts`, sorts as
text), rows are dicts keyed by column name, and engine errors come out as `StoreError`.

Row shapes (the column names are the contract; `docs/LOGGER.md` lists them):
- history rows (`session`, `sessions`, `vitals`, `events`, `calls`): as documented per method;
  `events` rows carry `detail` already decoded to a dict.
- export rows: every stored column of the kind, in table order, without internal ids; JSON
  columns (`alarms`, `quality`, `detail`) as JSON text, quarantine `raw` as bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.logger.ingest import Classified
from contract import topics
from contract.messages import is_ident

EXPORT_KINDS = ("vitals", "events", "calls", "sessions", "quarantine")
ROOM_COLUMNS = (
    "site",
    "room",
    "availability",
    "phase",
    "session_id",
    "call_status",
    "last_seq",
    "last_ts",
    "last_received_at",
)
VITAL_COLUMNS = (
    "spo2",
    "heart_rate",
    "pulse_rate",
    "nibp_sys",
    "nibp_dia",
    "nibp_mean",
    "resp_rate",
)
MAX_VITAL_POINTS = 20_000  # a 3-hour session at 1 Hz is ~11k
MAX_HISTORY_ROWS = 5000

Row = dict[str, Any]
# A notifier's page attempt as stored and read back (`LogStore.pages`), oldest first.
PAGE_COLUMNS = (
    "notifier", "call_id", "tier", "recipient", "channel", "attempt", "ok", "status", "detail",
    "at", "received_at",
)  # fmt: skip
PAGE_INSERT_COLUMNS = ("site", "room", *PAGE_COLUMNS)
QUARANTINE_COLUMNS = ("site", "room", "rows", "bytes", "dropped")


@dataclass(frozen=True)
class QuarantineLimits:
    """Caps of the quarantine per bucket (a room, or ('', '') for topics that name none): past
    either, the bucket's oldest rows are dropped (and counted) in the batch that went over.
    `max_bytes` counts the stored raw bytes (each capped at 64 KiB)."""

    max_rows: int = 10_000
    max_bytes: int = 50 * 1024 * 1024


def quarantine_bucket(topic: str) -> tuple[str, str]:
    """The (site, room) a quarantined message is counted against: its topic's, when the topic
    is `clinic/<site>/room/<room>/...` with valid ids; ('', '') otherwise (one shared bucket)."""
    parts = topic.split("/")
    named = len(parts) >= 5 and parts[0] == topics.ROOT and parts[2] == "room"
    if named and is_ident(parts[1]) and is_ident(parts[3]):
        return parts[1], parts[3]
    return "", ""


class StoreError(Exception):
    """The database failed (I/O, disk full, locked, schema). The logger retries a batch that
    failed this way and never acknowledges it; anything else is a bug in the caller's data."""


@dataclass
class BatchStats:
    """What one `write_batch` (or the logger's running total) did."""

    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    ignored: int = 0
    commands: int = 0
    pages: int = 0  # notifier page reports stored (a replay is not counted)
    quarantine_dropped: int = 0  # old quarantine rows dropped to keep a room under its caps
    rate_limited: int = 0  # rejections over their room's quarantine rate: counted, not stored
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.ignored += other.ignored
        self.commands += other.commands
        self.pages += other.pages
        self.quarantine_dropped += other.quarantine_dropped
        self.rate_limited += other.rate_limited
        for k, v in other.by_kind.items():
            self.by_kind[k] = self.by_kind.get(k, 0) + v


@dataclass(frozen=True)
class LedgerCounts:
    """Totals of one site, for audits (the demo's summary)."""

    vitals: int
    events: int
    alerts_raised: int
    duplicate_seqs: int  # ledger rows sharing a (site, room, epoch, seq): 0 unless the key broke
    quarantined: int  # the whole quarantine (it is not per site)
    quarantine_dropped: int = 0  # rows of the site's rooms dropped to keep under the caps


class LogStore(Protocol):
    """The logger's database. A writable store is used from one thread (the logger's writer);
    a read-only one (`open_store(..., readonly=True)`) from any thread, and answers empty while
    the database does not exist yet."""

    # -- ingest and upkeep (the logger) ----------------------------------------------------
    def write_batch(self, items: Iterable[tuple[Classified, str]]) -> BatchStats:
        """Store `(classified, received_at)` items atomically, idempotent on (site, room, epoch,
        seq): a replay is skipped, the same key with other content goes to quarantine; a new
        epoch of a room (re-imaged, lost state) is accepted at once and its snapshots win."""
        ...

    def delete_old_vitals(self, cutoff: str, batch: int = 500, max_batches: int = 20) -> int:
        """Retention: delete vitals with `ts < cutoff` in short transactions of `batch` rows, at
        most `max_batches` per call; return how many were deleted."""
        ...

    def delete_expired(
        self, clinical_cutoff: str, quarantine_cutoff: str, batch: int = 500, max_batches: int = 20
    ) -> dict[str, int]:
        """Retention of every table but `room_state`/`epochs`: vitals and events (`ts`, with
        their ledger rows), calls (first time known), sessions (`started_at`),
        availability_log, commands and pages (`received_at`) older than `clinical_cutoff`;
        quarantine (`received_at`) older than `quarantine_cutoff`. At most `max_batches`
        transactions of `batch` rows per call; the next call resumes where this one stopped,
        so every room is reached across calls. Returns the rows deleted per table."""
        ...

    # -- history (the board) ---------------------------------------------------------------
    def session(self, site: str, room: str, session_id: str) -> Row | None:
        """The `sessions` row of one session (all its columns), or None."""
        ...

    def sessions(self, site: str, room: str, limit: int = 20) -> list[Row]:
        """A room's latest sessions, newest first (all columns)."""
        ...

    def vitals(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        """`epoch`, `seq`, `ts` and VITAL_COLUMNS of a room in [since, until), oldest first
        (capped)."""
        ...

    def events(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        """Events of a room in [since, until), oldest first (capped): epoch, seq, ts, kind, call_id,
        priority, phase, from_phase, session_id, by, reason, detail (a dict)."""
        ...

    def pages(self, site: str, room: str, since: str, until: str | None = None) -> list[Row]:
        """The notifier's page attempts about a room's calls with `at` in [since, until),
        oldest first (capped): PAGE_COLUMNS, `ok` a bool."""
        ...

    def calls(self, site: str, since: str | None = None, until: str | None = None) -> list[Row]:
        """Calls of a site placed in [since, until) (unbounded sides when None), newest first
        (capped): room, call_id, priority, status, placed_at, claimed_at, claimed_by,
        escalated_at, cancelled_at, cancelled_by, response_s, resolved_s."""
        ...

    def report_rows(self, kind: str, site: str, since: str, until: str) -> list[Row]:
        """The rows behind the board's reports (`report_sql.REPORT_KINDS`: call events,
        room events, availability, backlog, quarantine) of a site in [since, until), oldest
        first (capped at `report_sql.MAX_REPORT_ROWS`); event rows carry `detail` as a dict."""
        ...

    # -- exports and `roomctl log rooms` ---------------------------------------------------
    def export_rows(
        self,
        kind: str,
        site: str,
        room: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Iterator[Row]:
        """Stream every row of `kind` (EXPORT_KINDS) for a site (and room), `since` inclusive,
        `until` exclusive on the kind's own time (ts, placed_at, started_at, received_at)."""
        ...

    def export_columns(self, kind: str) -> list[str]:
        """The column names `export_rows(kind, ...)` yields, in order (for an empty export)."""
        ...

    def rooms(self) -> list[Row]:
        """Every room the logger knows (ROOM_COLUMNS), by site and room."""
        ...

    # -- audits (the demo, tests) ----------------------------------------------------------
    def quarantine_usage(self) -> list[Row]:
        """Each quarantine bucket (QUARANTINE_COLUMNS): its site and room ('' for topics that
        name no room), the rows and stored bytes it holds, and how many rows were dropped."""
        ...

    def stored_seqs(self, site: str, room: str, epoch: str | None = None) -> set[int]:
        """Every seq of a room in the ledger (of one numbering epoch, or of all)."""
        ...

    def counts(self, site: str) -> LedgerCounts:
        """Totals of a site."""
        ...

    def close(self) -> None:
        """Release the connection(s)."""
        ...
