"""Metrics and health for any central service (the logger, the board, the notifier to come).

How this works:
- Each service owns a `prometheus_client.CollectorRegistry` (never the global one, so several
  services, or tests, live in one process) and puts its counters there, or a collector that
  reads its live state at scrape time.
- **No patient data in metrics.** Label names are limited to `site` and `room`, plus a few
  whose values come from fixed tables of the contract or of this module (`kind` = topic leaf,
  `reason` = `QUARANTINE_REASONS`, `priority` = call priority). `check_labels()` enforces it;
  the tests call it on every scrape.
- `/healthz` means "I can do my job now". A service gives `Health` a check per duty (broker
  connected, database writable, ...); each returns None when fine or a short sentence saying
  what is wrong. 200 with `{"ok": true, ...}` when every check passes, else 503.
- A service without its own web server (the logger, the notifier) runs `OpsServer`: a small
  threaded HTTP server serving `/metrics` and `/healthz` on its own port (loopback by default).
  The board serves the same two paths from its own app (`broker/board/ops_routes.py`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("roomctl.ops")

ALLOWED_LABELS = frozenset({"site", "room", "kind", "reason", "priority"})
# Quarantine reasons as a fixed set (the stored reason is free text naming fields).
QUARANTINE_REASONS = (
    "oversize", "invalid_json", "validation", "unknown_topic", "wrong_site", "retained",
    "availability", "unknown_command", "topic_mismatch", "duplicate_conflict", "logger_error",
    "other",
)  # fmt: skip
_REASON_PREFIXES = (
    ("oversize", "oversize"), ("invalid JSON", "invalid_json"), ("validation", "validation"),
    ("unknown topic", "unknown_topic"), ("topic site", "wrong_site"),
    ("retained message", "retained"), ("availability", "availability"),
    ("unknown command", "unknown_command"), ("topic/envelope", "topic_mismatch"),
    ("duplicate seq", "duplicate_conflict"), ("logger error", "logger_error"),
)  # fmt: skip

Check = Callable[[], str | None]


def quarantine_reason(reason: str) -> str:
    """The fixed label value of a free-text quarantine reason."""
    for prefix, label in _REASON_PREFIXES:
        if reason.startswith(prefix):
            return label
    return "other"


def check_labels(registry: CollectorRegistry) -> None:
    """Raise ValueError when a metric of `registry` has a label outside ALLOWED_LABELS."""
    for metric in registry.collect():
        for sample in metric.samples:
            extra = set(sample.labels) - ALLOWED_LABELS - {"le", "quantile"}
            if extra:
                raise ValueError(f"metric {sample.name} has labels {sorted(extra)}")


class CertExpiry(Collector):
    """`roomctl_cert_expiry_timestamp_seconds{site}`: the earliest not-after of the service's
    own certificates (MQTT client, HTTPS server), read at scrape time (a renewed file counts)."""

    def __init__(self, site: str, files: Iterable[Path | None]) -> None:
        self.site = site
        self.files = [f for f in files if f is not None]

    def collect(self) -> Iterable[Metric]:
        from cryptography import x509

        family = GaugeMetricFamily(
            "roomctl_cert_expiry_timestamp_seconds",
            "Earliest not-after (Unix time) of this service's own TLS certificates",
            labels=["site"],
        )
        ends = []
        for path in self.files:
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError):
                continue
            ends.append(cert.not_valid_after_utc.timestamp())
        if ends:
            family.add_metric([self.site], min(ends))
        yield family


class PkiExpiry(Collector):
    """The clinic PKI as the broker holds it (`clients/*.crt`, `server.crt`, `crl.pem`), read
    at scrape time: `roomctl_room_cert_expiry_timestamp_seconds{site,room}` for each
    `room-<R>` certificate, `roomctl_broker_cert_expiry_timestamp_seconds{site}`, and
    `roomctl_crl_next_update_timestamp_seconds{site}` (a CRL past its next update locks every
    client out: docs/LOGGER.md)."""

    def __init__(self, site: str, pki_dir: Path) -> None:
        self.site = site
        self.pki_dir = Path(pki_dir)

    def collect(self) -> Iterable[Metric]:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        rooms = GaugeMetricFamily(
            "roomctl_room_cert_expiry_timestamp_seconds",
            "Not-after (Unix time) of each room's client certificate",
            labels=["site", "room"],
        )
        for path in sorted((self.pki_dir / "clients").glob("room-*.crt")):
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
                names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            except (OSError, ValueError):
                continue
            cn = str(names[0].value) if names else ""
            if cn.startswith("room-"):
                rooms.add_metric([self.site, cn[5:]], cert.not_valid_after_utc.timestamp())
        yield rooms
        broker = GaugeMetricFamily(
            "roomctl_broker_cert_expiry_timestamp_seconds",
            "Not-after (Unix time) of the broker's server certificate", labels=["site"],
        )  # fmt: skip
        try:
            server = x509.load_pem_x509_certificate((self.pki_dir / "server.crt").read_bytes())
            broker.add_metric([self.site], server.not_valid_after_utc.timestamp())
        except (OSError, ValueError):
            pass
        yield broker
        crl = GaugeMetricFamily(
            "roomctl_crl_next_update_timestamp_seconds",
            "When the CRL must be renewed by (Unix time); past it every client is refused",
            labels=["site"],
        )
        try:
            loaded = x509.load_pem_x509_crl((self.pki_dir / "crl.pem").read_bytes())
            if loaded.next_update_utc is not None:
                crl.add_metric([self.site], loaded.next_update_utc.timestamp())
        except (OSError, ValueError):
            pass
        yield crl


class NotifierMetrics:
    """What the notifier (phones, pagers: to come) counts, so its names are fixed now:
    `roomctl_notifications_sent_total{site,priority}` and `..._failed_total{site,priority}`.
    It serves them with `OpsServer` next to its `/healthz`."""

    def __init__(self, site: str, registry: CollectorRegistry | None = None) -> None:
        self.site = site
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.sent = Counter("roomctl_notifications_sent", "Notifications delivered",
                            ["site", "priority"], registry=self.registry)  # fmt: skip
        self.failed = Counter("roomctl_notifications_failed", "Notifications that failed",
                              ["site", "priority"], registry=self.registry)  # fmt: skip

    def delivered(self, priority: str) -> None:
        self.sent.labels(self.site, priority).inc()

    def failure(self, priority: str) -> None:
        self.failed.labels(self.site, priority).inc()


class Health:
    """Named checks; `report()` runs them all."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks

    def report(self) -> tuple[bool, dict[str, Any]]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check must never take the endpoint down
                problem = f"check failed: {type(exc).__name__}: {exc}"
            results[name] = "ok" if problem is None else problem
        ok = all(v == "ok" for v in results.values())
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return ok, {"ok": ok, "checks": results, "at": at}


def metrics_body(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition (format 0.0.4, read by Prometheus 2 and 3) of `registry`."""
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


class OpsServer:
    """`/metrics` and `/healthz` on their own port, for a service with no web server."""

    def __init__(
        self, registry: CollectorRegistry, health: Health, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype = metrics_body(ops.registry)
                    self._send(200, body, ctype)
                elif path == "/healthz":
                    ok, doc = ops.health.report()
                    self._send(200 if ok else 503, json.dumps(doc).encode(), "application/json")
                else:
                    self._send(404, b"not found: /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("ops http: " + fmt, *args)

        self.registry = registry
        self.health = health
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
