"""`roomctl pki`, `roomctl broker config`, `roomctl log export` and `roomctl log rooms`."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.logger.export import parse_time
from broker.logger.store import open_store
from broker.mosquitto.pki import load_cert
from broker.mosquitto.run import free_port
from contract import messages, sitetime, topics
from controller.cli import main
from tests.support.clinic_rooms import event
from tests.support.logger_store import received

SITE = "s1"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    store = open_store(path)
    items = []
    for room in ("101", "102"):
        for seq in range(1, 6):
            msg = messages.VitalsMessage(
                site=SITE,
                room=room,
                epoch="0000000000000001",
                seq=seq,
                ts=T0 + timedelta(minutes=seq),
                clock_synced=True,
                spo2=95 + seq,
                pulse_rate=None,
                protocol="nonin",
                alarms=["LOW_BATT"],
            )
            items.append((topics.vitals(SITE, room), msg.model_dump_json()))
        ev = event(
            SITE,
            room,
            6,
            messages.EventKind.CALL_PLACED,
            call_id=f"c-{room}",
            priority=messages.CallPriority.NORMAL,
            ts=T0,
            detail={"k": 1},
        )
        items.append((topics.events(SITE, room), ev.model_dump_json()))
        ev = event(
            SITE,
            room,
            7,
            messages.EventKind.CALL_CLAIMED,
            call_id=f"c-{room}",
            by="alice",
            ts=T0 + timedelta(seconds=42),
        )
        items.append((topics.events(SITE, room), ev.model_dump_json()))
        items.append((topics.availability(SITE, room), "online"))
    items.append((topics.vitals(SITE, "101"), "{broken"))
    store.write_batch([received(t, p, rx="2026-03-01T09:30:00.000Z") for t, p in items])
    store.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def export(
    capsys: pytest.CaptureFixture[str], db: Path, kind: str, *options: str, site: str = SITE
) -> tuple[int, str, str]:
    """`roomctl log export --db DB --site SITE --kind KIND [options]`."""
    return run(capsys, "log", "export", "--db", str(db), "--site", site, "--kind", kind, *options)


def test_export_vitals_csv_with_room_and_time_filters(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = export(
        capsys,
        db,
        "vitals",
        "--room",
        "101",
        "--format",
        "csv",
        "--since",
        "2026-03-01T09:02:00Z",
        "--until",
        "2026-03-01T09:05:00Z",
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["room"], r["seq"], r["spo2"]) for r in rows] == [
        ("101", "2", "97.0"),
        ("101", "3", "98.0"),
        ("101", "4", "99.0"),
    ]
    assert rows[0]["pulse_rate"] == ""  # missing stays missing, never 0
    assert json.loads(rows[0]["alarms"]) == ["LOW_BATT"]
    assert "3 vitals row(s)" in err


def test_export_events_ndjson(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = export(capsys, db, "events", "--format", "ndjson")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["room"], r["seq"], r["kind"]) for r in rows] == [
        ("101", 6, "call_placed"),
        ("101", 7, "call_claimed"),
        ("102", 6, "call_placed"),
        ("102", 7, "call_claimed"),
    ]
    assert rows[0]["detail"] == {"k": 1}


def test_export_calls_has_response_seconds(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = export(capsys, db, "calls", "--format", "ndjson", "--room", "102")
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["call_id"] == "c-102" and row["status"] == "claimed" and row["response_s"] == 42.0


def test_export_quarantine_and_empty_sessions(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = export(capsys, db, "quarantine", "--format", "ndjson")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["reason"].startswith("invalid JSON")
    assert base64.b64decode(row["raw_b64"]) == b"{broken"
    code, out, _ = export(capsys, db, "sessions", "--format", "csv")
    assert code == 0 and out.startswith("site,room,session_id,phase,started_at")
    assert len(out.splitlines()) == 1  # header only


def test_export_other_site_is_empty_and_bad_input_is_refused(
    db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = export(capsys, db, "vitals", "--format", "ndjson", site="s2")
    assert code == 0 and out == ""
    code, _, err = export(capsys, db, "vitals", "--since", "yesterday")
    assert code == 2 and "bad time" in err
    code, _, err = export(capsys, tmp_path / "none.db", "vitals")
    assert code == 2 and "no database" in err


def test_export_to_a_file(db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    code, stdout, _ = export(capsys, db, "calls", "--out", str(out))
    assert code == 0 and stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["call_id"], r["response_s"]) for r in rows] == [("c-101", "42.0"), ("c-102", "42.0")]


def test_log_rooms(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "log", "rooms", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["site", "room", "availability"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["s1", "101", "online"],
        ["s1", "102", "online"],
    ]
    code, out, _ = run(capsys, "log", "rooms", "--db", str(db), "--json")
    assert [r["last_seq"] for r in json.loads(out)] == [7, 7]


def test_parse_time_forms() -> None:
    assert parse_time("2026-03-01") == "2026-03-01T00:00:00.000Z"
    assert parse_time("2026-03-01T10:00:00+01:00") == "2026-03-01T09:00:00.000Z"


def test_pki_and_broker_config_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert run(capsys, "pki", "init", str(pki), "--site", SITE, "--hostname", "mqtt.lan")[0] == 0
    assert run(capsys, "pki", "issue", str(pki), "room", "101")[0] == 0
    assert run(capsys, "pki", "issue", str(pki), "staff", "alice", "--days", "30")[0] == 0
    assert run(capsys, "pki", "issue", str(pki), "logger")[0] == 0
    code, _, err = run(capsys, "pki", "issue", str(pki), "room", "Bad/Name")
    assert code == 2 and "room name" in err
    code, _, err = run(capsys, "pki", "init", str(pki), "--site", SITE)
    assert code == 2 and "already" in err
    expired = run(
        capsys,
        "pki",
        "issue",
        str(pki),
        "room",
        "102",
        "--not-before",
        "2020-01-01T00:00:00Z",
        "--not-after",
        "2020-02-01T00:00:00Z",
    )
    assert expired[0] == 0
    cert = load_cert(pki / "clients" / "room-102.crt")
    assert cert.not_valid_after_utc == datetime(2020, 2, 1, tzinfo=UTC)
    out = tmp_path / "etc" / "mosquitto.conf"
    code, _, err = run(
        capsys,
        "broker",
        "config",
        "--pki",
        str(pki),
        "--site",
        SITE,
        "--out",
        str(out),
        "--tls-port",
        "18883",
        "--state-dir",
        str(tmp_path),
    )
    assert code == 0, err
    text = out.read_text()
    assert "listener 18883" in text and "require_certificate true" in text
    assert "allow_anonymous false" in text and "persistence true" in text
    acl = (tmp_path / "etc" / "mosquitto.acl").read_text()
    for user in ("user logger", "user room-101", "user room-102", "user staff-alice"):
        assert user in acl
    code, _, err = run(
        capsys, "broker", "config", "--pki", str(pki), "--site", "s9", "--out", str(out)
    )
    assert code == 2 and "for site 's1'" in err


def test_logger_command_refuses_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "logger", "--site", "s1")
    assert code == 2 and "db: Field required" in err
    code, _, err = run(capsys, "logger", "--site", "S 1", "--db", "x.db")
    assert code == 2 and "site" in err


def test_logger_command_reports_unreadable_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys,
        "logger",
        "--site",
        "s1",
        "--db",
        str(tmp_path / "x.db"),
        "--broker",
        "mqtts://127.0.0.1:1",
        "--ca",
        str(tmp_path / "missing-ca.crt"),
    )
    assert code == 2 and "logger cannot start" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["logger", "--site", "s1", "--broker", "mqtt://127.0.0.1:1"],
        ["log", "export", "--site", "s1", "--kind", "vitals"],
        ["log", "rooms"],
        ["board", "--site", "s1", "--broker", "mqtt://127.0.0.1:1"],
    ],
)
def test_a_database_url_is_never_taken_for_a_file_name(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run(capsys, *argv, "--db", "mysql://nurse:secret@db/x")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --db" in err and "unknown store URL" in err
    # a PostgreSQL URL is a database, never a path; a server that is not there is a clean error
    url = f"postgresql://nurse:secret@127.0.0.1:{free_port()}/roomctl"
    code, _, err = run(capsys, *argv, "--db", url)
    assert code == 2 and err.startswith("roomctl: error:") and "Traceback" not in err
    assert "secret" not in err
    assert list(tmp_path.iterdir()) == []  # no folder named "postgresql:" was made


def test_a_database_url_in_the_logger_config_file_is_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "logger.toml"
    config.write_text('site = "s1"\ndb = "postgresql://db.clinic.lan"\n')
    code, _, err = run(capsys, "logger", "--config", str(config))
    assert code == 2 and f"{config}: db:" in err and "name the database" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logger.toml"]


def test_export_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """`roomctl log export ... | head -2`: no BrokenPipeError traceback (issue 20)."""
    import subprocess
    import sys

    path = tmp_path / "big.db"
    store = open_store(path)
    items = []
    for seq in range(1, 4001):  # far more than a pipe's buffer holds
        msg = messages.VitalsMessage(
            site=SITE, room="101", epoch="0000000000000001", seq=seq,
            ts=T0 + timedelta(seconds=seq), clock_synced=True, spo2=97, pulse_rate=70,
            protocol="masimo",
        )  # fmt: skip
        items.append(received(topics.vitals(SITE, "101"), msg.model_dump_json()))
    store.write_batch(items)
    store.close()
    cmd = (
        f"{sys.executable} -m controller.cli log export --db {path} --site {SITE} "
        "--kind vitals | head -2"
    )
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60
    )
    assert len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141  # 128 + SIGPIPE, as other tools under pipefail


def test_export_names_each_rows_time_on_the_sites_clock(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: stored times stay UTC; `local_time` is the row's own time in the site's zone
    with the zone named, and a date in --since is the site's local day."""
    code, out, err = export(
        capsys, db, "vitals", "--room", "101", "--format", "csv", "--timezone", "America/New_York",
        "--since", "2026-03-01T04:02:00", "--until", "2026-03-01T04:05:00",
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["seq"] for r in rows] == ["2", "3", "4"]  # 09:02-09:05 UTC, as before
    assert rows[0]["ts"].endswith("Z") and rows[0]["local_time"].endswith(" EST")
    assert rows[0]["local_time"].startswith("2026-03-01 04:0")
    assert "2026-03-01 04:02:00 EST to 2026-03-01 04:05:00 EST" in err
    assert "America/New_York" in err
    monkeypatch.setenv("ROOMCTL_TIMEZONE", "Europe/Berlin")
    code, out, err = export(capsys, db, "calls", "--format", "ndjson", "--room", "102")
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["local_time"].endswith((" CET", " CEST")) and row["placed_at"].endswith("Z")
    assert parse_time("2026-03-01", sitetime.site_zone("Europe/Berlin")) == (
        "2026-02-28T23:00:00.000Z"
    )
    code, _, err = export(capsys, db, "calls", "--timezone", "Atlantis/Lost")
    assert code == 2 and "--timezone: 'Atlantis/Lost' is not a time zone" in err
