"""The logger's `/metrics` and `/healthz` (broker/ops, broker/logger/metrics.py) against a real
TLS Mosquitto, scraped over HTTP and read with prometheus_client's own parser."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.logger.config import LoggerConfig
from broker.logger.service import Logger
from broker.mosquitto.run import Mosquitto, free_port
from broker.ops.cli import healthy
from broker.ops.metrics import (
    ALLOWED_LABELS,
    Health,
    NotifierMetrics,
    OpsServer,
    check_labels,
    quarantine_reason,
)
from controller.cli import main
from tests.support.clinic import Clinic, running_logger
from tests.support.clinic_rooms import FakeRoom, vitals
from tests.support.sdnotify import notified_service

pytestmark = pytest.mark.broker


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS | {"le"}, s
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_logger_metrics_count_what_it_stored(clinic: Clinic, tmp_path: Path) -> None:
    config = clinic.logger_config(tmp_path / "log.db", pki_dir=clinic.pki.root)
    with running_logger(config) as logger:
        ops = OpsServer(logger.metrics.registry, logger.health).start()
        try:
            assert logger.subscribed.wait(10)
            with FakeRoom(clinic, "101") as room:
                room.send_mix(20)  # seq 1-20: vitals, two events, a state
                again = vitals(clinic.site, "101", 21).model_dump_json().encode()
                room.send("vitals", again)
                room.send("vitals", again)  # the same bytes again: deduplicated
                room.send("vitals", vitals(clinic.site, "101", 1))  # seq 1, other content
                room.send("vitals", b"{not json")
                room.wait_all_acked()
            assert logger.wait_committed(
                lambda t: t.inserted + t.duplicates + t.quarantined >= 24, timeout=30
            )
            got = scrape(ops.port)
            status, doc = healthz(ops.port)
        finally:
            ops.stop()
    site = (("site", clinic.site),)
    ingested = sum(v for (n, _), v in got.items() if n == "roomctl_logger_messages_ingested_total")
    assert ingested == logger.totals.inserted
    assert got[("roomctl_logger_messages_quarantined_total",
                (("reason", "invalid_json"), ("site", clinic.site)))] == 1  # fmt: skip
    quarantined = sum(
        v for (n, _), v in got.items() if n == "roomctl_logger_messages_quarantined_total"
    )
    assert quarantined == logger.totals.quarantined
    deduped = got[("roomctl_logger_messages_deduplicated_total", site)]
    assert deduped == logger.totals.duplicates == 1
    conflict = (("reason", "duplicate_conflict"), ("site", clinic.site))
    assert got[("roomctl_logger_messages_quarantined_total", conflict)] == 1
    assert got[("roomctl_logger_broker_connected", site)] == 1
    assert got[("roomctl_logger_queue_depth", site)] == 0
    assert got[("roomctl_logger_db_write_seconds_count", site)] >= 1
    assert got[("roomctl_logger_ingest_lag_seconds", site)] >= 0
    assert got[("roomctl_logger_last_commit_timestamp_seconds", site)] > 0
    assert got[("roomctl_cert_expiry_timestamp_seconds", site)] > 0
    now = time.time()  # the clinic's test certificates: 825 days, the CRL 180
    room_cert = got[("roomctl_room_cert_expiry_timestamp_seconds", (("room", "101"), *site))]
    assert 800 * 86400 < room_cert - now < 826 * 86400
    assert ("roomctl_room_cert_expiry_timestamp_seconds", (("room", "102"), *site)) in got
    assert got[("roomctl_broker_cert_expiry_timestamp_seconds", site)] > now
    assert got[("roomctl_crl_next_update_timestamp_seconds", site)] - now > 170 * 86400
    assert status == 200 and doc["ok"] and doc["checks"] == {"broker": "ok", "database": "ok"}


def test_no_patient_data_in_label_values(clinic: Clinic, tmp_path: Path) -> None:
    with running_logger(clinic.logger_config(tmp_path / "log.db")) as logger:
        assert logger.subscribed.wait(10)
        with FakeRoom(clinic, "102") as room:
            room.send_mix(5)
            room.wait_all_acked()
        assert logger.wait_committed(lambda t: t.inserted >= 5, timeout=30)
        text = "\n".join(
            f"{s.name} {s.labels}" for m in logger.metrics.registry.collect() for s in m.samples
        )
    assert "spo2" not in text and "sess-" not in text and "pulse" not in text


def test_health_says_what_is_wrong_without_a_broker(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    cfg = LoggerConfig(broker=f"mqtt://127.0.0.1:{port}", db=tmp_path / "log.db", site="s1")
    logger = Logger(cfg)
    ok, doc = logger.health.report()
    assert not ok and doc["checks"]["database"] == "the writer thread is not running"
    logger.start()
    ops = OpsServer(logger.metrics.registry, logger.health).start()
    try:
        status, doc = healthz(ops.port)
        assert status == 503
        assert doc["checks"] == {"broker": "not connected to the broker", "database": "ok"}
        assert healthy(doc, status, ["database"])  # what the systemd unit's start check asks
        url = f"http://127.0.0.1:{ops.port}/healthz"
        assert main(["health", url, "--require", "database"]) == 0
        assert main(["health", url]) == 1
    finally:
        ops.stop()
        logger.stop()


def test_quarantine_reasons_are_a_fixed_set() -> None:
    assert quarantine_reason("invalid JSON: Expecting value") == "invalid_json"
    assert quarantine_reason("validation error: spo2: too big") == "validation"
    assert quarantine_reason("oversize: 70000 bytes > limit 65536") == "oversize"
    assert quarantine_reason("duplicate seq with different content") == "duplicate_conflict"
    assert quarantine_reason("something new") == "other"


def test_ops_server_serves_any_service_registry() -> None:
    """What the notifier will run: its counters and checks behind `OpsServer`."""
    notifier = NotifierMetrics("s1")
    notifier.delivered("emergency")
    notifier.delivered("emergency")
    notifier.failure("normal")
    health = Health({"phone gateway": lambda: "gateway refused the login"})
    ops = OpsServer(notifier.registry, health).start()
    try:
        got = scrape(ops.port)
        status, doc = healthz(ops.port)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{ops.port}/other", timeout=10)
    finally:
        ops.stop()
    sent = (("priority", "emergency"), ("site", "s1"))
    assert got[("roomctl_notifications_sent_total", sent)] == 2
    failed = (("priority", "normal"), ("site", "s1"))
    assert got[("roomctl_notifications_failed_total", failed)] == 1
    assert status == 503 and doc["checks"] == {"phone gateway": "gateway refused the login"}
    assert missing.value.code == 404
    missing.value.close()
    check_labels(notifier.registry)


def test_roomctl_logger_speaks_to_systemd(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """`Type=notify` + `WatchdogSec`: READY once storing, WATCHDOG while the writer lives, and
    /healthz on --ops-port (what the unit's ExecStartPost asks)."""
    ops_port = free_port()
    with notified_service(
        tmp_path, "logger", "--broker", mosquitto.url, "--db", str(tmp_path / "log.db"),
        "--site", "s1", "--ops-port", str(ops_port),
    ) as svc:
        svc.until("WATCHDOG=1", 3)
        assert svc.got[0].startswith("READY=1")
        url = f"http://127.0.0.1:{ops_port}/healthz"
        assert main(["health", url, "--wait", "30"]) == 0
        assert svc.stop() == 0
