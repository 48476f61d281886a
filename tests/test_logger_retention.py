"""Retention covers every table and every room, resumes across passes, and is on by default
(issue 13)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.logger.config import LoggerConfig
from broker.logger.ingest import Rejected
from broker.logger.store import LogStore, open_store
from broker.logger.store.sqlite import SqliteLogStore
from contract import messages, topics
from contract.timefmt import format_ts
from tests.support.clinic import Clinic, running_logger
from tests.support.clinic_rooms import db_count, event, poll, vitals
from tests.support.logger_store import SITE, q, received
from tests.support.mqtt import staff_command

ROOMS = [f"r{n:02d}" for n in range(30)]  # more than the 20 rooms the old pass reached
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)
TABLES = (
    "vitals", "events", "calls", "sessions", "availability_log", "commands", "pages", "quarantine",
)  # fmt: skip


def _seed(store: LogStore) -> None:
    """Per room: old vitals, events (a call and a session), an availability change, a
    command, a quarantined message; plus one recent vitals reading (kept)."""
    for room in ROOMS:
        rx_old = format_ts(OLD)
        items = [
            received(topics.vitals(SITE, room), vitals(SITE, room, seq).model_copy(
                update={"ts": OLD}), rx=rx_old)
            for seq in range(1, 4)
        ]  # fmt: skip
        placed = event(SITE, room, 4, messages.EventKind.CALL_PLACED, ts=OLD, call_id=f"c-{room}",
                       priority="normal")  # fmt: skip
        phase = event(SITE, room, 5, messages.EventKind.PHASE_CHANGED, ts=OLD,
                      phase="pre_check", from_phase="idle", session_id=f"s-{room}")  # fmt: skip
        claim = staff_command(call_id=f"c-{room}", by="alice")
        items += [
            received(topics.events(SITE, room), placed, rx=rx_old),
            received(topics.events(SITE, room), phase, rx=rx_old),
            received(topics.availability(SITE, room), b"online", rx=rx_old),
            received(topics.cmd(SITE, room, "claim", "ana"), json.dumps(claim).encode(), rx=rx_old),
            received(topics.page(SITE, room, "main"), _page(room), rx=rx_old),
            (Rejected(topics.vitals(SITE, room), "invalid JSON: x", b"{", 1), rx_old),
            received(topics.vitals(SITE, room), vitals(SITE, room, 6), rx=format_ts(NOW)),
        ]
        stats = store.write_batch(items)
        assert stats.inserted == 6 and stats.quarantined == 1 and stats.commands == 1
        assert stats.pages == 1


def _page(room: str) -> str:
    """A notifier's page report about the room's call (issue 15), kept like a command."""
    return json.dumps({"room": room, "call_id": f"c-{room}", "tier": 1, "recipient": "nina",
                       "channel": "ntfy", "attempt": 1, "ok": True, "detail": "HTTP 200",
                       "status": "delivered", "at": format_ts(OLD)})  # fmt: skip


def _counts(store: LogStore) -> dict[str, int]:
    return {t: int(q(store, f"SELECT COUNT(*) FROM {t}")[0][0]) for t in (*TABLES, "messages")}


def test_retention_reaches_every_table_and_every_room_across_passes(
    store: LogStore,
) -> None:
    _seed(store)
    assert _counts(store) == {
        "vitals": 120, "events": 60, "calls": 30, "sessions": 30, "availability_log": 30,
        "commands": 30, "pages": 30, "quarantine": 30, "messages": 180,
    }  # fmt: skip
    clinical = format_ts(NOW - timedelta(days=400))
    quarantine = format_ts(NOW - timedelta(days=30))
    first = store.delete_expired(clinical, quarantine, batch=500, max_batches=20)
    assert sum(first.values()) < 30 * 3 + 30 * 2 + 30 * 2 + 90  # bounded: not done yet
    totals = dict(first)
    for _ in range(20):
        done = store.delete_expired(clinical, quarantine, batch=500, max_batches=20)
        for table, n in done.items():
            totals[table] += n
        if not any(done.values()):
            break
    assert totals == {
        "vitals": 90, "events": 60, "calls": 30, "sessions": 30, "availability_log": 30,
        "commands": 30, "pages": 30, "quarantine": 30,
    }  # fmt: skip
    after = _counts(store)
    assert after["vitals"] == 30 and after["messages"] == 30  # the recent reading of each room
    assert all(after[t] == 0 for t in TABLES if t != "vitals")
    assert q(store, "SELECT COUNT(*) FROM room_state") == [(30,)]  # kept
    assert q(store, "SELECT SUM(row_count), SUM(byte_count) FROM quarantine_buckets") == [(0, 0)]


def test_quarantine_has_its_own_shorter_cutoff(store: LogStore) -> None:
    recent = format_ts(NOW - timedelta(days=10))
    older = format_ts(NOW - timedelta(days=40))
    store.write_batch([
        (Rejected(topics.vitals(SITE, "101"), "bad", b"{", 1), older),
        (Rejected(topics.vitals(SITE, "101"), "bad", b"{{", 2), recent),
    ])  # fmt: skip
    clinical = format_ts(NOW - timedelta(days=400))
    done = store.delete_expired(clinical, format_ts(NOW - timedelta(days=30)))
    assert done["quarantine"] == 1
    assert q(store, "SELECT raw FROM quarantine") == [(b"{{",)]
    (usage,) = store.quarantine_usage()
    assert (usage["rows"], usage["bytes"]) == (1, 2)


def test_retention_is_on_by_default() -> None:
    cfg = LoggerConfig.model_validate({"site": "s1", "db": "x.db"})
    assert cfg.retention_days == 400 and cfg.quarantine_retention_days == 30


@pytest.mark.broker
def test_the_logger_expires_every_room_with_its_defaults(clinic: Clinic, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    seeded = open_store(db)
    assert isinstance(seeded, SqliteLogStore)
    _seed(seeded)
    seeded.close()
    cfg = clinic.logger_config(db, retention_interval_s=0.01, retention_batch=5)
    with running_logger(cfg) as logger:
        assert logger.subscribed.wait(10)
        poll(
            lambda: db_count(db, "SELECT COUNT(*) FROM vitals") == 30
            and db_count(db, "SELECT COUNT(*) FROM quarantine") == 0
            and db_count(db, "SELECT COUNT(*) FROM sessions") == 0,
            30,
            "every room's old rows deleted",
        )
    assert db_count(db, "SELECT COUNT(*) FROM messages") == 30
    assert db_count(db, "SELECT COUNT(*) FROM events") == 0
    assert db_count(db, "SELECT COUNT(*) FROM commands") == 0


def test_the_central_roles_logger_unit_passes_the_limits() -> None:
    import shlex

    import jinja2
    import yaml

    from controller.cli import build_parser

    role = Path(__file__).resolve().parents[1] / "ansible/roles/central"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    defaults.update(central_site="s1", ansible_managed="test")
    text = jinja2.Template((role / "templates/roomctl-logger.service.j2").read_text()).render(
        **defaults
    )
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.retention_days == defaults["central_logger_retention_days"] == 400
    assert args.quarantine_retention_days == 30
    assert args.quarantine_max_rows_per_room == 10_000
    assert args.quarantine_max_bytes_per_room == 50 * 1024 * 1024
