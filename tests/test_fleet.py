"""`roomctl fleet simulate` (issue 16): simulated sites publish contract-valid room traffic that
a central logger serving every site (`--also-site`) stores in PostgreSQL, each seq once, with
no quarantine, calls and sessions derived as from real rooms. Real Mosquitto (the development
listener), real logger, real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.logger.config import LoggerConfig
from broker.logger.store import open_store
from broker.mosquitto.run import Mosquitto
from controller.cli import main
from tests.support.clinic import running_logger
from tests.support.clinic_rooms import poll
from tests.support.postgres import pg_count

pytestmark = pytest.mark.broker


def test_a_simulated_fleet_is_stored_once_by_one_logger_for_all_sites(
    mosquitto: Mosquitto, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = LoggerConfig.model_validate(
        {"broker": mosquitto.url, "db": pg_url, "site": "site01", "also_sites": ["site02"]}
    )
    stats_file = tmp_path / "stats.json"
    with running_logger(cfg) as logger:
        assert logger.subscribed.wait(10)
        code = main(
            [
                "fleet", "simulate", "--sites", "2", "--rooms", "3", "--broker", mosquitto.url,
                "--rate", "20", "--duration", "1.5", "--session-ticks", "8", "--call-every", "6",
                "--stats", str(stats_file),
            ]
        )  # fmt: skip
        assert code == 0
        stats = json.loads(stats_file.read_text())
        assert stats["acked"] and stats["published"] > 6 * stats["ticks"]
        poll(lambda: pg_count(pg_url) >= stats["published"], 60, "every message stored")
    store = open_store(pg_url, readonly=True)
    try:
        for site, rooms in stats["sites"].items():
            for room, (epoch, last_seq) in rooms.items():
                assert store.stored_seqs(site, room, epoch) == set(range(1, last_seq + 1))
            counts = store.counts(site)
            assert counts.duplicate_seqs == 0 and counts.quarantined == 0
            calls = store.calls(site)
            assert calls and any(c["status"] == "cancelled" for c in calls)
            assert any(store.sessions(site, room) for room in rooms)
        assert sorted({r["site"] for r in store.rooms()}) == ["site01", "site02"]
    finally:
        store.close()
    assert "published" in capsys.readouterr().err


def test_fleet_simulate_refuses_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fleet", "simulate", "--sites", "0", "--rooms", "3", "--broker", "mqtt://x:1"]
    assert main(argv) == 2
    assert "--sites" in capsys.readouterr().err
    argv = ["fleet", "simulate", "--sites", "1", "--rooms", "3", "--broker", "mqtt://x:1",
            "--outbox-rooms", "4"]  # fmt: skip
    assert main(argv) == 2
    assert "--outbox-rooms must be 0..3" in capsys.readouterr().err


def test_sampled_rooms_go_through_the_real_room_outbox_and_are_stored_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db, outboxes = tmp_path / "log.sqlite", tmp_path / "outboxes"
    cfg = LoggerConfig.model_validate({"broker": mosquitto.url, "db": db, "site": "site01"})
    runs = []
    with running_logger(cfg) as logger:
        assert logger.subscribed.wait(10)
        for n in (1, 2):  # the second run reopens the same outboxes: same epochs, seq goes on
            stats_file = tmp_path / f"stats{n}.json"
            code = main(
                [
                    "fleet", "simulate", "--sites", "1", "--rooms", "4", "--broker",
                    mosquitto.url, "--rate", "20", "--duration", "1.5", "--session-ticks", "8",
                    "--call-every", "6", "--outbox-rooms", "2", "--outbox-dir", str(outboxes),
                    "--client-prefix", f"run{n}", "--stats", str(stats_file),
                ]
            )  # fmt: skip
            assert code == 0
            runs.append(json.loads(stats_file.read_text()))
            assert runs[-1]["acked"]
        assert runs[0]["outbox_rooms"] == {"site01": ["r001", "r003"]}
        first, second = runs[0]["sites"]["site01"], runs[1]["sites"]["site01"]
        for room in ("r001", "r003"):  # the real outbox: its epoch is kept, its seq continues
            assert (outboxes / "site01" / room / "outbox.sqlite").exists()
            assert second[room][0] == first[room][0] and second[room][1] > first[room][1]
        for room in ("r002", "r004"):  # the simulator's own rooms: a new epoch per run
            assert second[room][0] != first[room][0]
        store = open_store(db, readonly=True)
        try:
            # a sampled room's one epoch holds both runs; the others have one epoch per run
            want = [tuple(r["sites"]["site01"][room]) for r in runs for room in second]
            poll(lambda: all(len(store.stored_seqs("site01", room, epoch)) >= last
                             for room in second for epoch, last in want
                             if epoch in (first[room][0], second[room][0])),
                 60, "every message stored")  # fmt: skip
            for room in ("r001", "r003"):
                epoch, last = second[room]
                assert store.stored_seqs("site01", room, epoch) == set(range(1, last + 1))
            counts = store.counts("site01")
            assert counts.duplicate_seqs == 0 and counts.quarantined == 0
        finally:
            store.close()
