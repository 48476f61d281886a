"""The logger's Prometheus metrics and its health checks (served by `broker.ops.OpsServer`).

| metric | type | labels |
|---|---|---|
| `roomctl_logger_messages_ingested_total` | counter | site, kind (topic leaf) |
| `roomctl_logger_messages_quarantined_total` | counter | site, reason (`QUARANTINE_REASONS`) |
| `roomctl_logger_messages_deduplicated_total` | counter | site |
| `roomctl_logger_quarantine_dropped_total` | counter | site |
| `roomctl_logger_quarantine_rate_limited_total` | counter | site |
| `roomctl_logger_ingest_lag_seconds` | gauge | site: commit minus oldest `ts` of last batch |
| `roomctl_logger_receive_lag_seconds` | gauge | site: commit minus oldest receive time |
| `roomctl_logger_queue_depth` | gauge | site: messages received, not yet committed |
| `roomctl_logger_db_write_seconds` | histogram | site: one batch's write |
| `roomctl_logger_db_write_failures_total` | counter | site |
| `roomctl_logger_broker_connected` | gauge | site: 1 connected and subscribed |
| `roomctl_logger_last_commit_timestamp_seconds` | gauge | site |
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.logger.ingest import Accepted, Classified, Rejected
from broker.logger.store import BatchStats
from broker.ops.metrics import CertExpiry, Health, PkiExpiry, quarantine_reason

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Live(Collector):
    """Gauges read from the running logger at scrape time."""

    def __init__(self, site: str, depth: Callable[[], int], up: Callable[[], bool]) -> None:
        self.site, self.depth, self.up = site, depth, up

    def collect(self) -> Iterable[Metric]:
        q = GaugeMetricFamily(
            "roomctl_logger_queue_depth", "Messages received, not yet committed", labels=["site"]
        )
        q.add_metric([self.site], self.depth())
        yield q
        c = GaugeMetricFamily(
            "roomctl_logger_broker_connected",
            "1 when the logger is connected to the broker and subscribed",
            labels=["site"],
        )
        c.add_metric([self.site], 1.0 if self.up() else 0.0)
        yield c


class LoggerMetrics:
    """Counters the writer thread updates after each batch; gauges read at scrape."""

    def __init__(
        self,
        site: str,
        depth: queue.Queue[Any],
        connected: threading.Event,
        subscribed: threading.Event,
        cert_files: Sequence[Any] = (),
        pki_dir: Any = None,
    ) -> None:
        self.site = site
        self.registry = CollectorRegistry(auto_describe=True)
        r, s = self.registry, ["site"]
        self.ingested = Counter("roomctl_logger_messages_ingested",
                                "Messages stored, by topic leaf", ["site", "kind"],
                                registry=r)  # fmt: skip
        self.quarantined = Counter("roomctl_logger_messages_quarantined",
                                   "Messages quarantined, by reason", ["site", "reason"],
                                   registry=r)  # fmt: skip
        self.deduplicated = Counter("roomctl_logger_messages_deduplicated",
                                    "Redeliveries ignored (same key, same content)", s,
                                    registry=r)  # fmt: skip
        self.dropped = Counter("roomctl_logger_quarantine_dropped",
                               "Old quarantine rows dropped to keep a room under its caps", s,
                               registry=r)  # fmt: skip
        self.rate_limited = Counter("roomctl_logger_quarantine_rate_limited",
                                    "Rejections over their room's quarantine rate (not stored)",
                                    s, registry=r)  # fmt: skip
        self.lag = Gauge("roomctl_logger_ingest_lag_seconds",
                         "Commit time minus the oldest message time of the last batch", s,
                         registry=r)  # fmt: skip
        self.receive_lag = Gauge("roomctl_logger_receive_lag_seconds",
                                 "Commit time minus the oldest receive time of the last batch", s,
                                 registry=r)  # fmt: skip
        self.write_time = Histogram("roomctl_logger_db_write_seconds",
                                    "Time to write one batch to the database", s,
                                    buckets=WRITE_BUCKETS, registry=r)  # fmt: skip
        self.write_failures = Counter("roomctl_logger_db_write_failures",
                                      "Batch writes that failed (retried, never acked)", s,
                                      registry=r)  # fmt: skip
        self.last_commit = Gauge("roomctl_logger_last_commit_timestamp_seconds",
                                 "When the last batch was committed (Unix time)", s,
                                 registry=r)  # fmt: skip
        for reason in ("validation", "duplicate_conflict"):  # present from the start, at 0
            self.quarantined.labels(site, reason)
        self.deduplicated.labels(site)
        self.write_failures.labels(site)
        self.dropped.labels(site)
        self.rate_limited.labels(site)
        self.registry.register(
            _Live(site, depth.qsize, lambda: connected.is_set() and subscribed.is_set())
        )
        if cert_files:
            self.registry.register(CertExpiry(site, cert_files))
        if pki_dir is not None:
            self.registry.register(PkiExpiry(site, pki_dir))

    def batch_written(
        self,
        items: Sequence[tuple[Classified, str]],
        received: Sequence[float],
        stats: BatchStats,
        seconds: float,
    ) -> None:
        """Count one committed batch (the writer thread, after COMMIT)."""
        site = self.site
        now = time.time()
        self.write_time.labels(site).observe(seconds)
        for kind, n in stats.by_kind.items():
            self.ingested.labels(site, kind).inc(n)
        rejected = [c for c, _ in items if isinstance(c, Rejected)]
        for c in rejected:
            self.quarantined.labels(site, quarantine_reason(c.reason)).inc()
        conflicts = stats.quarantined - len(rejected)  # same key, other content (the store's)
        if conflicts > 0:
            self.quarantined.labels(site, "duplicate_conflict").inc(conflicts)
        if stats.duplicates:
            self.deduplicated.labels(site).inc(stats.duplicates)
        if stats.quarantine_dropped:
            self.dropped.labels(site).inc(stats.quarantine_dropped)
        if stats.rate_limited:
            self.rate_limited.labels(site).inc(stats.rate_limited)
        stamps = [c.msg.ts.timestamp() for c, _ in items if isinstance(c, Accepted)]
        if stamps:
            self.lag.labels(site).set(max(0.0, now - min(stamps)))
        if received:
            self.receive_lag.labels(site).set(max(0.0, now - min(received)))
        self.last_commit.labels(site).set(now)

    def write_failed(self) -> None:
        self.write_failures.labels(self.site).inc()


def logger_health(
    connected: threading.Event,
    subscribed: threading.Event,
    writer_alive: Callable[[], bool],
    db_problem: Callable[[], str | None],
) -> Health:
    """The logger can do its job: connected and subscribed, its writer running, and the last
    database write (a batch, or the retention pass at least every `retention_interval_s`)
    succeeded."""

    def broker() -> str | None:
        if not connected.is_set():
            return "not connected to the broker"
        if not subscribed.is_set():
            return "connected, not yet subscribed"
        return None

    def database() -> str | None:
        if not writer_alive():
            return "the writer thread is not running"
        problem = db_problem()
        return None if problem is None else f"database not writable: {problem}"

    return Health({"broker": broker, "database": database})
